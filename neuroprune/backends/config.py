"""The ``ray:`` config section (read only when ``backend: ray``)."""

from __future__ import annotations

from pydantic import Field

from ..section import Section


class RayConfig(Section):
    """Where the Ray backend and Ray Tune run, and with what resources."""

    address: str | None = Field(None, description="Ray address (auto, ray://HOST:10001); "
                                "none starts a local Ray")
    num_workers: int | None = Field(None, ge=1, description="shard actors (default: one per "
                                    "GPU, else one per cpus_per_worker CPUs)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs per shard actor")
    gpus_per_worker: float | None = Field(None, ge=0, description="GPUs per shard actor "
                                          "(default 1 when the cluster has GPUs)")
    max_shard_retries: int = Field(3, ge=0, description="times a shard whose actor died is "
                                   "re-run on another actor")
    trial_cpus: float = Field(1, gt=0, description="tune: CPUs per trial")
    trial_gpus: float = Field(0, ge=0, description="tune: GPUs per trial (fractions allowed)")
    max_concurrent_trials: int | None = Field(None, ge=1, description="tune: trials at once")
    max_failures: int = Field(1, ge=0, description="tune: retries of a failed trial")
