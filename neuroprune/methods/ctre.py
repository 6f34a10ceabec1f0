"""CTRE: grow by the cosine similarity of the activations a connection would join, with random
exploration; no dense gradient is needed.

Atashgahi, Pieterse, Liu, Mocanu, Veldhuis and Pechenizkiy, "A Brain-inspired Algorithm for
Training Highly Sparse Neural Networks", Machine Learning 2022 (arXiv 1903.07138).
Here the CTRE_sim variant: similarity on the current mini-batch, per layer.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .dst import DropGrowUpdater, DSTParams, DynamicSparseMethod


class CTREParams(DSTParams):
    explore: float = Field(0.2, ge=0, le=1, description="share of grown connections chosen at "
                           "random instead of by similarity")


class CTREUpdater(DropGrowUpdater):
    needs_activations = True

    def grow_scores(self, name, state, activations):
        if activations is None or name not in activations:  # conv layers: explore only
            return self.random_scores(name, state)
        a_in, a_out = activations[name]  # [P, B, in], [P, B, out]
        a_in = a_in - a_in.mean(1, keepdim=True)
        a_out = a_out - a_out.mean(1, keepdim=True)
        a_in = a_in / a_in.norm(dim=1, keepdim=True).clamp_min(1e-8)
        a_out = a_out / a_out.norm(dim=1, keepdim=True).clamp_min(1e-8)
        sim = torch.bmm(a_out.transpose(1, 2), a_in).abs()  # [P, out, in], like the weight
        # Random exploration: a share of connections get a score above every similarity.
        noise = self.random_scores(name, state)
        lucky = noise < self.p.explore
        return sim + lucky * (2.0 + noise)


class CTRE(DynamicSparseMethod):
    name = "ctre"
    summary = "dynamic sparse training: grow by activation cosine similarity + exploration"
    citation = "Atashgahi et al. 2022, arXiv 1903.07138"
    Params = CTREParams
    updater_cls = CTREUpdater
