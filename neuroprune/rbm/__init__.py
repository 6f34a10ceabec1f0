"""Restricted Boltzmann machines with a connectivity mask, trained by contrastive divergence,
and their log-likelihood by annealed importance sampling (``kind: rbm_connectivity``)."""

from .ais import ais_log_partition, exact_log_partition, log_likelihood
from .machine import RBMStack, connection_budget

__all__ = ["RBMStack", "connection_budget", "ais_log_partition", "exact_log_partition",
           "log_likelihood"]
