"""Ray backend: the population cut into shards, one per long-lived actor (one per GPU, or per
CPU worker where there is no GPU). Each actor holds the dataset on its device, loaded once,
and trains its shard as one vectorised batch with the same engine as the local backend, so the
results equal the local backend's (every network's result depends only on its own mask, initial
weights and the shared data order, not on which shard it is in).

Actors can die (preemption, OOM, a killed node). A shard whose actor dies is re-run on another
actor (a replacement is started when none is left); results are gathered by position, so no
evaluation is lost or counted twice.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..engine import EvalTask, Evaluator, PopulationResult
from .ray_session import RaySession, connect, import_ray, plan_workers

log = logging.getLogger(__name__)
__all__ = ["RayEvaluator", "import_ray", "shard_bounds", "shared_ray"]


def shared_ray(backend: str, address: str | None = None) -> RaySession:
    """Context: join (or start) Ray once for a run of many searches (comparison cells), so
    that each search's evaluator reuses it instead of starting and stopping its own."""
    return RaySession(backend == "ray", address)


class ShardWorker:
    """Body of the Ray actor: the configured trainer with the data on this actor's device."""

    def __init__(self, spec, data, settings, layout, engine, augment, threads: int):
        import ray

        from ..engine import make_trainer

        torch.set_num_threads(max(1, threads))
        gpus = ray.get_gpu_ids()
        device = "cuda" if gpus and torch.cuda.is_available() else "cpu"
        self.trainer = make_trainer(spec, data, settings, layout, device, engine, augment)

    def evaluate(self, task: EvalTask) -> PopulationResult:
        return self.trainer.run(task)

    def where(self) -> dict[str, Any]:
        import ray
        return {"node": ray.get_runtime_context().get_node_id(),
                "device": str(self.trainer.device)}


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, deterministic shards of ``n`` networks (sizes differ by at most one)."""
    shards = max(1, min(n, shards))
    return [(i * n // shards, (i + 1) * n // shards) for i in range(shards)]


class RayEvaluator(Evaluator):
    """Evaluates populations on Ray actors, on the cluster :func:`.ray_session.connect`
    joins (or a local Ray it starts)."""

    name = "ray"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None, augment=(),
                 address=None, num_workers=None, cpus_per_worker=1, gpus_per_worker=None,
                 max_shard_retries=3):
        ray = import_ray()
        self._ray = ray
        self._owns_ray = connect(address)
        num_workers, gpus_per_worker = plan_workers(num_workers or "auto", cpus_per_worker,
                                                    gpus_per_worker)
        self._options = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker,
                         "max_restarts": 0}
        self._args = (ray.put(spec), ray.put(data), ray.put(settings), layout, engine,
                      tuple(augment), int(cpus_per_worker))
        self._remote = ray.remote(ShardWorker)
        self.actors = [self._new_actor() for _ in range(max(1, num_workers))]
        self.max_shard_retries = max_shard_retries
        self.device = "ray"

    def _new_actor(self):
        return self._remote.options(**self._options).remote(*self._args)

    def placement(self) -> list[dict[str, Any]]:
        """Where each actor runs (node id, device)."""
        return self._ray.get([a.where.remote() for a in self.actors])

    def evaluate(self, task: EvalTask) -> PopulationResult:
        ray = self._ray
        bounds = shard_bounds(len(task), len(self.actors))
        if not bounds or len(task) == 0:
            return PopulationResult(metrics={})
        task = task.to("cpu")  # shipped to the actors; each moves its shard to its device
        pending = {i: (self.actors[i], self.actors[i].evaluate.remote(task.slice(a, b)), 0)
                   for i, (a, b) in enumerate(bounds)}
        done: dict[int, PopulationResult] = {}
        while pending:
            refs = {ref: i for i, (_, ref, _) in pending.items()}
            ready, _ = ray.wait(list(refs), num_returns=1)
            i = refs[ready[0]]
            actor, ref, tries = pending.pop(i)
            try:
                done[i] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                if tries >= self.max_shard_retries:
                    raise RuntimeError(f"shard {i} failed on {tries + 1} actors") from exc
                log.warning("actor for shard %d died (%s); re-running the shard", i,
                            type(exc).__name__)
                if actor in self.actors:
                    self.actors.remove(actor)
                busy = {a for a, _, _ in pending.values()}
                spare = [a for a in self.actors if a not in busy] or self.actors
                if not spare:
                    self.actors.append(self._new_actor())
                    spare = self.actors
                a, b = bounds[i]
                target = spare[0]
                pending[i] = (target, target.evaluate.remote(task.slice(a, b)), tries + 1)
        return PopulationResult.concat([done[i] for i in range(len(bounds))])

    def close(self) -> None:
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:
                pass
        self.actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
