"""Names of the run kinds and of the activation-search strategies."""

from __future__ import annotations

from ..registry import Registry

#: kind name -> its Kind class, in its own module (base: :class:`.kinds.Kind`)
KINDS = Registry("kind", "kind", {
    "mask_search": ("neuroprune.searches.mask_search:MaskSearchKind",
                    "one method finds a sparse mask; the best network is trained and tested"),
    "comparison": ("neuroprune.searches.comparison:ComparisonKind",
                   "methods x sparsities x seeds side by side"),
    "activation_search": ("neuroprune.searches.activation_search:ActivationSearchKind",
                          "evolve activation functions (coevolution and baselines)"),
    "ensemble_search": ("neuroprune.searches.ensemble_search:EnsembleSearchKind",
                        "evolve a classifier ensemble (CIF-E)"),
    "planted": ("neuroprune.searches.planted_search:PlantedKind",
                "every method against tickets planted in wide networks"),
    "rbm_connectivity": ("neuroprune.searches.rbm_connectivity:RBMConnectivityKind",
                         "RBMs fully connected, random sparse and with learned connectivity"),
    "neuroevolution": ("neuroprune.searches.neuroevolution:NeuroevolutionKind",
                       "NEAT against tabular Q-learning (and a DQN) on Gymnasium tasks"),
    "private_training": ("neuroprune.searches.private_training:PrivateTrainingKind",
                         "one (randomly masked) network trained with differential privacy "
                         "(training.privacy: DP-SGD or LSG)"),
})

#: activation-search strategy -> the ActivationSearch method that runs it, or a fixed function
STRATEGIES = Registry("strategy", "activation.strategies", {
    "relu": ("neuroprune.searches.activation_search:fixed_relu", "ReLU everywhere"),
    "gelu": ("neuroprune.searches.activation_search:fixed_gelu", "GELU everywhere"),
    "silu": ("neuroprune.searches.activation_search:fixed_silu", "SiLU everywhere"),
    "random": ("neuroprune.searches.activation_search:ActivationSearch.random_search",
               "random search over trees"),
    "ga": ("neuroprune.searches.activation_search:ActivationSearch.ga",
           "one population, one function in every layer"),
    "coevolution": ("neuroprune.searches.activation_search:ActivationSearch.coevolution",
                    "three populations, one per layer role"),
    "es_single": ("neuroprune.searches.activation_search:ActivationSearch.es_single",
                  "(1+lambda), one function in every slot (Lapid & Sipper)"),
    "es_triple": ("neuroprune.searches.activation_search:ActivationSearch.es_triple",
                  "(1+lambda) over three functions at once (Lapid & Sipper)"),
    "coevolution_sequential": ("neuroprune.searches.activation_search:"
                               "ActivationSearch.coevolution_sequential",
                               "three (1+lambda) searches in turn, one per slot, the others at "
                               "their current best (Lapid & Sipper)"),
})
