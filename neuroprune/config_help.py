"""``neuroprune config``: the resolved config as YAML, every key with its help text."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, Field

from .config import KIND_SECTIONS, RunConfig, to_dict


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(model: type[BaseModel] | None, values: dict[str, Any], indent: int) -> list[str]:
    out, pad = [], "  " * indent
    fields = model.model_fields if model is not None else {}
    for key, value in values.items():
        info = fields.get(key)
        help_text = f"  # {info.description}" if info is not None and info.description else ""
        sub = _section_model(info)
        if isinstance(value, dict) and value and sub is not None:
            out.append(f"{pad}{key}:{help_text}")
            out += _lines(sub, value, indent + 1)
        else:
            out.append(f"{pad}{key}: {_scalar(value)}{help_text}")
    return out


def _section_model(info, key: str = "", cfg: RunConfig | None = None
                   ) -> type[BaseModel] | None:
    if cfg is not None and key in KIND_SECTIONS:  # the kind's own section, by its Config
        section = getattr(cfg, key)
        return type(section) if isinstance(section, BaseModel) else None
    if info is None:
        return None
    ann = info.annotation
    for cand in (ann, *getattr(ann, "__args__", ())):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def annotated_yaml(cfg: RunConfig) -> str:
    """Every key of ``cfg`` with its value and, as a comment, its help text; the method's
    parameters under ``method`` with theirs."""
    tree = to_dict(cfg)
    params = cfg.method_params()
    tree["method"] = {"name": cfg.method.name, **params.model_dump(mode="json")}
    lines = []
    for key, value in tree.items():
        info = RunConfig.model_fields[key]
        help_text = f"  # {info.description}" if info.description else ""
        if key == "method":
            lines.append(f"method:  # {cfg.method.name}: its parameters")
            lines.append(f"  name: {cfg.method.name}")
            rest = {k: v for k, v in value.items() if k != "name"}
            lines += _lines(type(params), rest, 1)
        elif isinstance(value, dict) and _section_model(info, key, cfg) is not None:
            lines.append(f"{key}:{help_text}")
            lines += _lines(_section_model(info, key, cfg), value, 1)
        else:
            lines.append(f"{key}: {_scalar(value)}{help_text}")
    return "\n".join(lines) + "\n"


def config_schema() -> dict[str, Any]:
    """The JSON schema of a config file, with each kind's section (and ``tune:``) described
    by the class that validates it (``RunConfig`` holds them untyped, so that config.py
    imports no kind)."""
    from pydantic import create_model

    from .config import COMMAND_SECTIONS
    from .searches.registry import KINDS

    typed: dict[str, Any] = {}
    for name in KINDS:
        kind = KINDS.load(name)
        if kind.section is not None and kind.Config is not None:
            field = RunConfig.model_fields[kind.section]
            typed[kind.section] = (kind.Config | None,
                                   Field(None, description=field.description))
    tune = RunConfig.model_fields["tune"]
    typed["tune"] = (COMMAND_SECTIONS.load("tune") | None,
                     Field(None, description=tune.description))
    return create_model("RunConfig", __base__=RunConfig, **typed).model_json_schema()
