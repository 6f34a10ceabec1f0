"""The ``training.privacy:`` section: differentially private training (DP-SGD, or LSG).

Read by :mod:`neuroprune.engine.private_trainer` (kind ``private_training``). Nothing here
imports Opacus: the section validates without the ``privacy`` extra.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ..section import Section


class PrivacyConfig(Section):
    """(epsilon, delta)-differential privacy of the training data: per-sample gradients
    clipped to ``max_grad_norm``, Gaussian noise calibrated so that the accountant's epsilon
    after the planned steps is at most ``epsilon``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epsilon: float = Field(3.0, gt=0, allow_inf_nan=False, description="target privacy "
                           "budget epsilon over the whole training")
    delta: float = Field(1e-5, gt=0, lt=1, description="target delta (well below 1 / the "
                         "number of training samples)")
    max_grad_norm: float = Field(1.0, gt=0, allow_inf_nan=False, description="per-sample "
                                 "gradient clipping norm (the noise scales with it)")
    accountant: Literal["rdp", "prv"] = Field("rdp", description="Opacus accountant that "
                                              "calibrates the noise and reports the spent "
                                              "epsilon")
    method: Literal["dpsgd", "lsg"] = Field("dpsgd", description="dpsgd: noise on every kept "
                                            "weight; lsg: noise on a low-rank, sparsified "
                                            "projection of the gradient (Ito et al. 2022)")
    rank: int = Field(4, ge=1, description="lsg: rank of the gradient carriers per weight "
                      "matrix")
    density: float = Field(0.5, gt=0, le=1, description="lsg: fraction of the low-rank "
                           "coordinates kept (and noised) at each step")
    basis: Literal["previous", "random"] = Field(
        "previous", description="lsg: carriers from one power iteration on the previous noisy "
        "update (post-processing, no privacy cost) or random orthonormal at each step")
    support: Literal["previous", "random"] = Field(
        "previous", description="lsg: kept coordinates by the magnitude of the previous noisy "
        "update in the new carriers, or uniformly at random at each step")
