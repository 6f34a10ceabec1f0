"""``model.name: torchvision:NAME``: any classification model of ``torchvision.models``,
untrained, with its class count set and its first convolution adapted to the data's input
channels (the rest of the network is torchvision's own)."""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ..errors import ConfigError, MissingDependencyError


def _torchvision_models():
    try:
        import torchvision.models as tvm
    except ImportError:
        raise MissingDependencyError("torchvision", "vision", "model.name torchvision:NAME") \
            from None
    except Exception as exc:  # installed, but built for another torch (CUDA vs CPU)
        raise ConfigError(f"torchvision is installed but cannot be imported with this torch "
                          f"build ({type(exc).__name__}: {str(exc).splitlines()[0]}); install "
                          f"the torchvision that matches it (docs/development.md)") from None
    return tvm


def torchvision_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                      kwargs: dict[str, Any]) -> nn.Module:
    tvm = _torchvision_models()
    names = tvm.list_models(module=tvm)  # classification models only
    if name not in names:
        close = difflib.get_close_matches(name, names, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"model.name: torchvision has no classification model '{name}'"
                          f"{hint}")
    kwargs = dict(kwargs)
    if name in ("googlenet", "inception_v3"):
        # one output, [batch, classes], in training too (no auxiliary heads' tuple), and
        # torchvision's own initialisation, said explicitly (its default warns)
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    try:
        model = tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs: torchvision {name}: {exc}") from None
    channels = input_shape[0] if len(input_shape) == 3 else 1
    return adapt_input_channels(model, channels)


def adapt_input_channels(model: nn.Module, channels: int) -> nn.Module:
    """Replace the first ``Conv2d`` by one with ``channels`` inputs (same everything else)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels != channels:
                    setattr(parent, child_name, nn.Conv2d(
                        channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, child.dilation, child.groups, child.bias is not None,
                        child.padding_mode))
                return model
    return model
