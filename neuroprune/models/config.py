"""The ``model:`` config section: a zoo model with its options, a factory, or torchvision."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from ..section import Section, keyword_options, option_defaults
from .spec import TORCHVISION, ModelSpec, validate_options


class ModelConfig(Section):
    """``name`` (a zoo model, whose options sit beside it like a method's) or ``torchvision:
    NAME``, or ``factory: "package.module:function"``; ``kwargs`` go to a factory or a
    torchvision model."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = Field("mlp", description="zoo model (see `neuroprune models`) or "
                      "torchvision:NAME; a zoo model's options sit beside it")
    factory: str | None = Field(None, description="'package.module:function' returning an "
                                "nn.Module (takes precedence over name)")
    kwargs: dict[str, Any] = Field({}, description="keyword arguments of the factory or the "
                                   "torchvision model")
    weights: str | None = Field(None, description="trained weights of this architecture (a "
                                "state dict saved by torch.save, or safetensors) to prune: "
                                "kept as given (no sparsity.rescale_init), and the summary "
                                "reports the accuracy before pruning")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, tree: Any) -> Any:
        if isinstance(tree, dict) and "arch" in tree:
            raise ValueError("'model.arch' is now 'model.name' (e.g. name: mlp)")
        return tree

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from . import MODELS
        if v.startswith(TORCHVISION):
            if not v[len(TORCHVISION):]:
                raise ValueError("give the torchvision model after 'torchvision:' "
                                 "(e.g. torchvision:resnet18)")
            return v
        return MODELS.check(v)

    @property
    def options(self) -> dict[str, Any]:
        """The zoo options written beside ``name``."""
        return dict(self.model_extra or {})

    def spec(self, input_shape: tuple[int, ...], num_classes: int) -> ModelSpec:
        """The validated :class:`ModelSpec` for data of ``input_shape`` and ``num_classes``."""
        shape = tuple(int(d) for d in input_shape)
        if self.factory or self.name.startswith(TORCHVISION):
            if self.options:
                raise ConfigError(f"model: {', '.join(self.options)} are options of zoo "
                                  f"models; a factory's or torchvision model's arguments go in "
                                  f"model.kwargs")
            return ModelSpec(shape, num_classes, None if self.factory else self.name,
                             dict(self.kwargs), self.factory)
        if self.kwargs:
            raise ConfigError(f"model.kwargs is for factories and torchvision models; the "
                              f"options of zoo model '{self.name}' sit beside its name "
                              f"(model.{next(iter(self.kwargs))})")
        from . import MODELS
        fn = MODELS.load(self.name)
        options = validate_options(fn, self.options, f"model '{self.name}'")
        # an option at its default is no option: a config.yaml (which writes every default)
        # gives the spec, and so the memo and cache keys, of the config it was written from
        defaults = {n: p.default for n, p in keyword_options(fn).items()}
        options = {k: v for k, v in options.items() if not _same(v, defaults.get(k, _NONE))}
        return ModelSpec(shape, num_classes, self.name, options)

    def resolved(self) -> dict[str, Any]:
        """The section as ``config.yaml`` writes it: a zoo model's options with their
        defaults filled in (a factory's or torchvision model's as given)."""
        tree = self.model_dump(mode="json")
        if self.factory or self.name.startswith(TORCHVISION):
            return tree
        from . import MODELS
        try:
            defaults = option_defaults(MODELS.load(self.name))
        except Exception:  # a zoo entry that does not import says so where it is built
            return tree
        return {**tree, **{k: v for k, v in defaults.items() if k not in tree}}

    def check_options(self) -> None:
        """Validate zoo options without data (input shape and classes do not matter)."""
        if not self.factory and not self.name.startswith(TORCHVISION):
            from . import MODELS
            validate_options(MODELS.load(self.name), self.options, f"model '{self.name}'")


_NONE = object()


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default)
    except Exception:  # values that do not compare (tensors) are never a default
        return False
