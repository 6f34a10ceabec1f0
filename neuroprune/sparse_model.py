"""A masked network on sparse kernels, for inference (``export --format sparse_model``).

Every ``Linear`` layer of the masked network becomes a :class:`SparseLinearInference`: its kept
weights as a CSR buffer (the layout of the sparse trainer, :mod:`neuroprune.engine.sparse`)
multiplied by ``torch.sparse.mm``, so a layer costs in proportion to its kept weights. Other
layers (convolutions, BatchNorm) stay dense: PyTorch has no sparse convolution kernel on the
CPU. The module is compiled with TorchScript and saved with ``torch.jit.save``: plain
``torch.jit.load(path)`` runs it, without neuroprune installed; the preprocessing of the run
is its first step, so it takes raw inputs, as the ONNX export does.

ONNX: the opset has no sparse tensor type for initialisers usable by ``MatMul`` (its
``SparseTensorProto`` initialisers are densified by runtimes), and ``torch.onnx`` does not
export ``torch.sparse.mm`` on CSR tensors; so there is no sparse ONNX export. ``--format
onnx`` writes the compact (dense, smaller) network.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


class SparseLinearInference(nn.Module):
    """``y = x W^T + b`` with ``W`` a CSR buffer of the kept weights."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        with warnings.catch_warnings():  # CSR's beta-state notice
            warnings.simplefilter("ignore", UserWarning)
            self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        bias = linear.bias.detach().clone() if linear.bias is not None else \
            torch.zeros(linear.out_features, dtype=linear.weight.dtype)
        self.register_buffer("bias", bias)
        self.out_features = int(linear.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.weight, flat.t()).t() + self.bias
        return y.reshape(list(lead) + [self.out_features])


def sparse_module(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (a masked network, pruned entries zero) with every ``Linear``
    replaced by a :class:`SparseLinearInference`, in evaluation mode."""
    out = copy.deepcopy(model).eval()
    for name, mod in list(out.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.Linear):
                setattr(mod, child_name, SparseLinearInference(child))
    return out


def script(model: nn.Module) -> torch.jit.ScriptModule:
    """TorchScript of :func:`sparse_module`'s result (a one-line error when it cannot be)."""
    from .errors import UserError
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, yet the one format
            warnings.simplefilter("ignore", DeprecationWarning)  # plain torch loads alone
            return torch.jit.script(model)
    except Exception as err:  # TorchScript's own errors span many classes and lines
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"export --format sparse_model: this network does not compile with "
                        f"TorchScript ({first}); use --format sparse or state_dict") from None


def save(module: torch.jit.ScriptModule, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, path)


__all__ = ["SparseLinearInference", "save", "script", "sparse_module"]
