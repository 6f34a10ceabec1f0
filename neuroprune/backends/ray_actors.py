"""Ray backend: the population cut into shards, one per long-lived actor (one per GPU, or per
CPU worker where there is no GPU). Each actor holds the dataset on its device, loaded once,
and trains its shard as one vectorised batch with the same engine as the local backend, so the
results equal the local backend's (every network's result depends only on its own mask, initial
weights and the shared data order, not on which shard it is in).

Each shard carries only itself (:mod:`..engine.wire`): its masks bit-packed, its per-network
tensors in storage of their own; what every shard shares goes into the object store and is
passed by reference: the data once per run, when the actors start, the initial state once
for as long as it stays the same (a search trains every generation from the same one), the
hooks once per generation. Results come back as ``[p]`` metric tensors.

Actors can die (preemption, OOM, a killed node). A shard whose actor dies is re-run on another
actor (a replacement is started when none is left); results are gathered by position, so no
evaluation is lost or counted twice. When a lost node took the last actor and no node left
has the resources for one (the only GPU node, say), the shard waits ``ray.lost_node_wait``
seconds for one to join (an autoscaler's replacement, a restarted node); then the run stops
with :class:`~.ray_session.ClusterLost` naming the lost node, and the command line adds the
resume command (the finished generations are saved).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from ..engine import EvalTask, Evaluator, PopulationResult
from ..engine.wire import PackedResult, PackedTask, shared_part
from .ray_session import ClusterLost, RaySession, connect, import_ray, plan_workers, say

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

    def evaluate(self, shard: PackedTask, init, hooks) -> PackedResult:
        return PackedResult.of(self.trainer.run(shard.unpack({"init": init, "hooks": hooks})))

    def where(self) -> dict[str, Any]:
        import ray
        return {"node": ray.get_runtime_context().get_node_id(),
                "device": str(self.trainer.device)}


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, deterministic shards of ``n`` networks (sizes differ by at most one)."""
    shards = max(1, min(n, shards))
    return [(i * n // shards, (i + 1) * n // shards) for i in range(shards)]


def serialized_bytes(value: Any) -> int:
    """Bytes of ``value`` as Ray serialises it for an actor call or the object store."""
    ray = import_ray()
    return ray._private.worker.global_worker.get_serialization_context().serialize(
        value).total_bytes


def shard_payloads(task: EvalTask, shards: int) -> tuple[dict[str, Any], list[PackedTask]]:
    """What the driver sends for ``task`` over ``shards`` shards: the part every shard shares
    (put into the object store once) and one compact payload per shard."""
    return shared_part(task), [PackedTask.of(task, a, b) for a, b in shard_bounds(len(task),
                                                                              shards)]


class RayEvaluator(Evaluator):
    """Evaluates populations on Ray actors, on the cluster :func:`.ray_session.connect`
    joins (or a local Ray it starts).

    With ``measure_traffic``, :attr:`traffic` gets one entry per :meth:`evaluate`: the bytes
    the driver sent (shared part and shard payloads, re-runs included) and received (results),
    as Ray serialises them."""

    name = "ray"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None, augment=(),
                 address=None, num_workers=None, cpus_per_worker=1, gpus_per_worker=None,
                 max_shard_retries=3, lost_node_wait=300.0, measure_traffic=False):
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
        self.lost_node_wait = lost_node_wait
        self.device = "ray"
        self.traffic: list[dict[str, int]] | None = [] if measure_traffic else None
        self._init: tuple[dict[str, torch.Tensor], Any] | None = None  # (a copy, its ref)

    def _init_ref(self, init: dict[str, torch.Tensor]) -> tuple[Any, bool]:
        """``(object ref of init, whether it was put now)``: put once, and again only when
        a task brings another initial state (compared by value, so a search that rebuilds
        the same one each generation does not send it again)."""
        if self._init is not None:
            kept, ref = self._init
            if kept.keys() == init.keys() and all(
                    kept[k].dtype == v.dtype and kept[k].shape == v.shape and
                    torch.equal(kept[k], v) for k, v in init.items()):
                return ref, False
        ref = self._ray.put(init)
        self._init = ({k: v.detach().clone() for k, v in init.items()}, ref)
        return ref, True

    def _new_actor(self):
        return self._remote.options(**self._options).remote(*self._args)

    def _alive_nodes(self) -> dict[str, str]:
        """Node id -> address of every alive node of the cluster."""
        return {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in self._ray.nodes()
                if n.get("Alive")}

    def _has_room(self) -> bool:
        """The alive nodes together hold the resources of one actor."""
        res = self._ray.cluster_resources()
        return (res.get("CPU", 0) + 1e-9 >= self._options["num_cpus"] and
                res.get("GPU", 0) + 1e-9 >= (self._options["num_gpus"] or 0))

    def _await_room(self, shard: int, before: dict[str, str]) -> None:
        """Wait up to :attr:`lost_node_wait` s for the cluster to hold an actor again;
        else :class:`ClusterLost` naming the nodes lost since ``before``."""
        if self._has_room():
            return
        gpus = self._options["num_gpus"]
        need = f"{gpus:g} GPU" if gpus else f"{self._options['num_cpus']} CPUs"

        def lost() -> str:
            alive = self._alive_nodes()
            return ", ".join(f"{addr} (node {node[:12]})" for node, addr in before.items()
                             if node not in alive) or "holding it"

        say(f"the Ray node {lost()} was lost with the last shard actor and no node left has "
            f"{need} for it; shard {shard} waits up to {self.lost_node_wait:g} s for a node "
            f"to join (ray.lost_node_wait)")
        deadline = time.monotonic() + self.lost_node_wait
        while not self._has_room():
            if time.monotonic() >= deadline:
                raise ClusterLost(f"the Ray node {lost()} was lost and no node left has "
                                  f"{need} for its shard (waited {self.lost_node_wait:g} s)")
            time.sleep(1.0)

    def placement(self) -> list[dict[str, Any]]:
        """Where each actor runs (node id, device)."""
        return self._ray.get([a.where.remote() for a in self.actors])

    def evaluate(self, task: EvalTask) -> PopulationResult:
        ray = self._ray
        if len(task) == 0:
            return PopulationResult(metrics={})
        task = task.to("cpu")  # shipped to the actors; each moves its shard to its device
        shared, payloads = shard_payloads(task, len(self.actors))
        if shared["init"] is None:  # one initial state per network: in the shards' payloads
            init_ref, fresh = None, False
        else:
            init_ref, fresh = self._init_ref(shared["init"])
        # the hooks once per generation, however many shards read them
        hooks_ref = ray.put(shared["hooks"]) if shared["hooks"] else ()
        sent = []
        if self.traffic is not None:
            sent.append(serialized_bytes(shared) if fresh else serialized_bytes(
                {**shared, "init": None}))

        def submit(actor, i):
            if self.traffic is not None:
                sent.append(serialized_bytes(payloads[i]))
            return actor.evaluate.remote(payloads[i], init_ref, hooks_ref)

        nodes = self._alive_nodes()  # to name a node lost during this generation
        pending = {i: (self.actors[i], submit(self.actors[i], i), 0)
                   for i in range(len(payloads))}
        done: dict[int, PackedResult] = {}
        while pending:
            refs = {ref: i for i, (_, ref, _) in pending.items()}
            ready, _ = ray.wait(list(refs), num_returns=1)
            i = refs[ready[0]]
            actor, ref, tries = pending.pop(i)
            try:
                done[i] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                    ray.exceptions.ObjectLostError) as exc:  # its result lost with its node
                if tries >= self.max_shard_retries:
                    raise RuntimeError(f"shard {i} failed on {tries + 1} actors") from exc
                log.warning("actor for shard %d died (%s); re-running the shard", i,
                            type(exc).__name__)
                if actor in self.actors and not isinstance(exc, ray.exceptions.ObjectLostError):
                    self.actors.remove(actor)
                busy = {a for a, _, _ in pending.values()}
                spare = [a for a in self.actors if a not in busy] or self.actors
                if not spare:
                    self._await_room(i, nodes)
                    self.actors.append(self._new_actor())
                    spare = self.actors
                pending[i] = (spare[0], submit(spare[0], i), tries + 1)
        if self.traffic is not None:
            self.traffic.append({"shards": len(payloads), "sent": sum(sent), "received": sum(
                serialized_bytes(r) for r in done.values())})
        return PopulationResult.concat([done[i].unpack() for i in range(len(payloads))])

    def close(self) -> None:
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:
                pass
        self.actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
