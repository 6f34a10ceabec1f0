"""Experiment tracking: what a run directory records, forwarded as it is recorded to
TensorBoard or MLflow (a config's ``logging: [tensorboard, mlflow]``; off by default).

* :mod:`~neuroprune.tracking.base`: the :class:`Tracker` interface;
* :mod:`~neuroprune.tracking.records`: the stable tags, and :class:`Tracking`, which the run
  directory feeds;
* :mod:`~neuroprune.tracking.tensorboard`, :mod:`~neuroprune.tracking.mlflow`: the trackers,
  registered by name in :data:`LOGGERS` and imported only when used.
"""

from .base import Tracker
from .records import Tracking, check_loggers, open_tracking
from .registry import LOGGERS

__all__ = ["LOGGERS", "Tracker", "Tracking", "check_loggers", "open_tracking"]
