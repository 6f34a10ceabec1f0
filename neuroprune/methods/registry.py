"""Names of the pruning and sparse-training methods (one line per method)."""

from __future__ import annotations

from ..registry import Registry

METHODS = Registry("method", "method.name", {
    "kstarts": ("neuroprune.methods.kstarts:KStarts",
                "evolve k random sparse masks, picked by magnitude, gradient and/or accuracy"),
    "kstarts_dg": ("neuroprune.methods.kstarts_dg:KStartsDG",
                   "K-starts whose starting masks come from the dissipating-gradient score"),
    "dissipating_gradients": ("neuroprune.methods.dissipating:DissipatingGradients",
                              "prune the weights that moved least from init in the first epochs"),
    "random": ("neuroprune.methods.random_masks:RandomMasks", "uniformly random mask"),
    "magnitude": ("neuroprune.methods.magnitude:MagnitudeAtInit", "largest initial weights"),
    "magnitude_retrain": ("neuroprune.methods.magnitude_retrain:MagnitudeRetrain",
                          "train dense, prune the smallest, retrain"),
    "snip": ("neuroprune.methods.snip:Snip", "largest |gradient x weight| at init"),
    "synflow": ("neuroprune.methods.synflow:SynFlow", "data-free iterative synaptic flow"),
    "grasp": ("neuroprune.methods.grasp:GraSP", "preserve gradient flow (Hessian-gradient)"),
    "imp": ("neuroprune.methods.imp:IMP", "iterative magnitude pruning with rewinding"),
    "rigl": ("neuroprune.methods.rigl:RigL", "dynamic sparse training, grow by gradient"),
    "set": ("neuroprune.methods.set_:SET", "dynamic sparse training, grow at random"),
    "ctre": ("neuroprune.methods.ctre:CTRE", "dynamic sparse training, grow by similarity"),
    "l1_filter": ("neuroprune.methods.l1_filter:L1Filter",
                  "structured: remove the filters and neurons of smallest L1 norm"),
    "slimming": ("neuroprune.methods.slimming:Slimming",
                 "structured: L1 on BatchNorm scales, remove the smallest channels"),
    "group_lasso": ("neuroprune.methods.group_lasso:GroupLasso",
                    "structured: group lasso on neurons and channels"),
    "oicsr": ("neuroprune.methods.oicsr:OICSR",
              "structured: group lasso over out-in channel groups, prune by group energy"),
    "sparse_group_l0": ("neuroprune.methods.sparse_group_l0:SparseGroupL0",
                        "structured: sparse group lasso plus l0 by variable splitting"),
    "ispasp": ("neuroprune.methods.ispasp:ISpaSP",
               "structured: select units by sparse recovery of the dense network's output"),
    "stressednets": ("neuroprune.methods.stressednets:StressedNets",
                     "structured: evolutionary synthesis, units survive by trained strength"),
    "bernoulli": ("neuroprune.methods.bernoulli:VariationalBernoulli",
                  "structured: Bernoulli unit gates, keep probabilities learnt variationally"),
    "ffr": ("neuroprune.methods.ffr:FFR",
            "structured: penalise the length and curvature of the feature flow"),
    "class_relevance": ("neuroprune.methods.class_relevance:ClassRelevance",
                        "structured: keep the units a sparse selection finds relevant to the "
                        "classes"),
    "scl": ("neuroprune.methods.scl:SCL",
            "structured: trainable unit gates by a unit step with straight-through gradients"),
})
