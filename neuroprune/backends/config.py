"""The ``ray:`` config section (read only when ``backend: ray``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..section import Section


class RayConfig(Section):
    """Where the Ray backend and Ray Tune run, and with what resources."""

    address: str | None = Field(None, description="Ray address: HOST:6379, ray://HOST:10001, "
                                "auto (a cluster running on this node) or local (a private "
                                "Ray on this machine); none joins the cluster a job runs in "
                                "(RAY_ADDRESS, or one started on this node with `ray start`), "
                                "else starts a local Ray")
    num_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="shard actors; auto: one per gpus_per_worker GPUs in the "
        "cluster (else one per cpus_per_worker CPUs); a number larger than the cluster holds "
        "asks Ray's autoscaler for the nodes")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs per shard actor")
    gpus_per_worker: float | None = Field(None, ge=0, description="GPUs per shard actor "
                                          "(default 1 when the cluster has GPUs); a fraction "
                                          "packs several actors on one GPU")
    max_shard_retries: int = Field(3, ge=0, description="times a shard whose actor died is "
                                   "re-run on another actor")
    lost_node_wait: float = Field(300, ge=0, description="seconds a shard whose node was "
                                  "lost waits for a node that can run it (an autoscaler's "
                                  "replacement, a restarted node) when no node left can; then "
                                  "the run stops with the resume command")
    trial_cpus: float = Field(1, gt=0, description="tune: CPUs per trial")
    trial_gpus: float = Field(0, ge=0, description="tune: GPUs per trial (fractions allowed)")
    max_concurrent_trials: int | None = Field(None, ge=1, description="tune: trials at once")
    max_failures: int = Field(1, ge=0, description="tune: retries of a failed trial")
