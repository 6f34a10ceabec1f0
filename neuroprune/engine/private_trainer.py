"""One network trained with differential privacy: DP-SGD (Abadi et al., "Deep Learning with
Differential Privacy", CCS 2016) through Opacus, or LSG (:mod:`neuroprune.engine.lsg`).

The population engine trains P networks as stacked tensors and has no per-sample gradients,
so private training lives here, one network at a time, and the ``private_training`` kind
uses it. Opacus gives the per-sample gradients (``GradSampleModule``) and the accountant
(RDP or PRV) that calibrates the noise to the target epsilon over the planned steps and
reports the epsilon spent. The batches are Poisson samples (every sample joins a step with
probability ``batch_size / N``), the sampling the accountant's guarantee assumes.

Per step: per-sample gradients -> weight mask -> the coder's reduced coordinates -> clip
each sample's reduced vector to ``max_grad_norm`` -> sum -> Gaussian noise (standard
deviation ``noise_multiplier * max_grad_norm``) on the kept coordinates only -> expand ->
weight mask -> divide by the expected batch size -> the optimizer. Masked weights therefore
receive neither gradient nor noise and stay exactly zero.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import torch
from torch import nn

from ..data.base import DataSplits
from ..errors import ConfigError, MissingDependencyError
from .lsg import make_coder
from .privacy import PrivacyConfig
from .settings import TrainSettings, batch_order, steps_per_run


def _opacus():
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise MissingDependencyError("opacus", "privacy", "training.privacy") from None
    return opacus


def check_private_model(model: nn.Module) -> None:
    """Refuse a model whose per-sample gradients are undefined (a layer that mixes the
    samples of a batch), naming the layer."""
    _opacus()
    from opacus.validators import ModuleValidator
    errors = ModuleValidator.validate(model, strict=False)
    if not errors:
        return
    mixing = (nn.modules.batchnorm._BatchNorm,)
    for name, module in model.named_modules():
        if isinstance(module, mixing):
            raise ConfigError(f"training.privacy: layer '{name}' ({type(module).__name__}) "
                              f"mixes the samples of a batch, so per-sample gradients are not "
                              f"defined; drop the BatchNorm (zoo conv models: "
                              f"model.batch_norm=false) or use GroupNorm in a factory")
    raise ConfigError(f"training.privacy: Opacus cannot train this model privately: "
                      f"{str(errors[0]).splitlines()[0]}")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    hits = 0
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = x[s:s + batch].to(y.device)  # mapped inputs stay on the host
            hits += int((model(xb).argmax(-1) == y[s:s + batch]).sum())
    model.train()
    return hits / max(1, len(x))


def train_private(model: nn.Module, data: DataSplits, settings: TrainSettings,
                  mask: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
                  epochs: int | None = None) -> dict[str, Any]:
    """Train ``model`` in place under ``settings.privacy`` (none: plainly, with the same masks
    and optimizer, as a reference); return accuracies and the privacy spent."""
    privacy: PrivacyConfig | None = settings.privacy
    epochs = settings.epochs if epochs is None else epochs
    mask = {k: v.bool() for k, v in (mask or {}).items()}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, m in mask.items():
            params[k].mul_(m.to(params[k]))
    n, bs = len(data.train_x), settings.batch_size
    total = steps_per_run(n, bs, epochs)
    gen = torch.Generator().manual_seed(int(seed))
    out: dict[str, Any] = {"steps": total}
    if privacy is None:
        _train_plain(model, data, settings, mask, epochs, seed, total)
    else:
        with warnings.catch_warnings():  # Opacus's advice on its alpha grid and on hooks of
            # inputs without gradients says nothing about the run
            warnings.filterwarnings("ignore", message="Optimal order is the")
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            out.update(_train_dp(model, data, settings, privacy, mask, gen, total))
    out["val_accuracy"] = evaluate(model, data.val_x, data.val_y)
    out["test_accuracy"] = evaluate(model, data.test_x, data.test_y)
    return out


def _train_plain(model, data, settings, mask, epochs, seed, total) -> None:
    opt = settings.make_optimizer(model.parameters())
    params = dict(model.named_parameters())
    for step, (_, idx) in enumerate(batch_order(len(data.train_x), settings.batch_size,
                                                epochs, seed, data.train_x.device)):
        for group in opt.param_groups:
            group["lr"] = settings.lr_at(step, total)
        opt.zero_grad(set_to_none=True)
        dev = data.train_y.device
        nn.functional.cross_entropy(model(data.inputs("train", idx, dev)),
                                    data.train_y[idx.to(dev)]).backward()
        for k, m in mask.items():
            params[k].grad.mul_(m.to(params[k].grad))
        opt.step()


def _train_dp(model, data, settings, privacy: PrivacyConfig, mask, gen, total) -> dict:
    check_private_model(model)
    from opacus import GradSampleModule
    from opacus.accountants import create_accountant
    from opacus.accountants.utils import get_noise_multiplier

    n = len(data.train_x)
    q = min(1.0, settings.batch_size / n)
    sigma = get_noise_multiplier(target_epsilon=privacy.epsilon, target_delta=privacy.delta,
                                 sample_rate=q, steps=max(1, total),
                                 accountant=privacy.accountant)
    accountant = create_accountant(privacy.accountant)
    gsm = GradSampleModule(model, loss_reduction="sum")
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    params = dict(model.named_parameters())
    coders = [make_coder(params[k].shape, mask.get(k), privacy) for k in names]
    opt = settings.make_optimizer([params[k] for k in names])
    clip, expected = privacy.max_grad_norm, q * n
    noised = 0
    for step in range(total):
        for group in opt.param_groups:
            group["lr"] = settings.lr_at(step, total)
        for c in coders:
            c.prepare(gen)
        idx = (torch.rand(n, generator=gen) < q).nonzero().squeeze(1).to(data.train_x.device)
        for k in names:
            params[k].grad_sample = None
        if len(idx):
            dev = data.train_y.device
            loss = nn.functional.cross_entropy(gsm(data.inputs("train", idx, dev)),
                                               data.train_y[idx.to(dev)], reduction="sum")
            loss.backward()
            reduced = [c.reduce(params[k].grad_sample) for c, k in zip(coders, names)]
            norms = torch.cat(reduced, 1).norm(dim=1)
            scale = (clip / (norms + 1e-6)).clamp(max=1.0)
            sums = [(r * scale.unsqueeze(1)).sum(0) for r in reduced]
        else:  # an empty Poisson batch still releases a noisy (zero) sum
            sums = [torch.zeros(len(c.keep), device=data.train_y.device) for c in coders]
        for k, c, s in zip(names, coders, sums):
            keep = c.keep.to(s.device)
            noise = torch.randn(s.shape, generator=gen).to(s) * (sigma * clip)
            noised += int(keep.sum())
            params[k].grad = (c.expand(s + noise * keep) / expected).to(params[k])
            params[k].grad_sample = None
        opt.step()
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    gsm.remove_hooks()
    return {"epsilon": accountant.get_epsilon(delta=privacy.delta) if total else 0.0,
            "target_epsilon": privacy.epsilon, "delta": privacy.delta,
            "noise_multiplier": sigma, "sample_rate": q, "max_grad_norm": clip,
            "privacy_method": privacy.method, "accountant": privacy.accountant,
            "noised_coordinates": noised // max(1, total),
            "parameters": sum(params[k].numel() for k in names)}
