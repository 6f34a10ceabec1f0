"""Names of the experiment trackers a config's ``logging:`` list may hold."""

from __future__ import annotations

from ..registry import Registry

#: tracker name -> Tracker class (see :mod:`neuroprune.tracking.base`)
LOGGERS = Registry("logger", "logging", {
    "tensorboard": ("neuroprune.tracking.tensorboard:TensorBoardTracker",
                    "TensorBoard event files in <run>/tb (pip install 'neuroprune[tensorboard]')"),
    "mlflow": ("neuroprune.tracking.mlflow:MLflowTracker",
               "an MLflow run in <run>/mlruns, or at MLFLOW_TRACKING_URI "
               "(pip install 'neuroprune[mlflow]')"),
})
