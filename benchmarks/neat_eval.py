"""NEAT generations scored three ways on the same genomes: neat-python one genome at a
time, neat-python's ``ParallelEvaluator`` (``--workers`` processes), and neuroprune's tensor
evaluator (the generation padded into one tensor pass, its episodes stepped together).

    python benchmarks/neat_eval.py --population 150 --generations 10 --episodes 2

For each environment, a seeded NEAT run (``configs/neat_driving.yaml``'s settings but
``--population``, ``--generations``, ``--episodes``, ``--max-steps``) evolves the
generations once; then every generation it produced is scored again by each evaluator, and
printed: the seconds that took, genomes per second, environment steps per second, and
whether every fitness equals the one-at-a-time evaluation's.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neuroprune.config import NeuroevolutionConfig
from neuroprune.rl.track import TRACK_ID
from neuroprune.searches.neuroevolution import Evaluator, _make, neat_config

_WORKER: dict = {}


def _score(genome, config):
    """ParallelEvaluator's function: one genome, in a worker process (its own env)."""
    import neat
    env_id, nc = _WORKER["env_id"], _WORKER["nc"]
    if "evaluator" not in _WORKER:
        _WORKER["evaluator"] = Evaluator(env_id, nc, 0)
    net = neat.nn.FeedForwardNetwork.create(genome, config)
    return _WORKER["evaluator"](lambda o: int(np.argmax(net.activate(o))))


def generations(env_id: str, nc: NeuroevolutionConfig, folder: Path):
    """The genomes of every generation of a seeded NEAT run, and its config."""
    import neat
    config = neat_config(env_id, nc, folder / "neat.cfg")
    scorer, kept = Evaluator(env_id, nc, 0), []

    def evaluate(genomes, config):
        kept.append([copy.deepcopy(g) for _, g in genomes])
        for _, g in genomes:
            net = neat.nn.FeedForwardNetwork.create(g, config)
            g.fitness = scorer(lambda o: int(np.argmax(net.activate(o))))
    neat.Population(config, seed=0).run(evaluate, nc.generations)
    return kept, config


def main(argv=None) -> None:
    import neat

    from neuroprune.rl.neat_tensor import TensorEvaluator
    from neuroprune.rl.track import TrackVectorEnv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=150)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--environments", nargs="+", default=[TRACK_ID, "CartPole-v1"])
    args = ap.parse_args(argv)
    print(f"population {args.population}, {args.generations} generations, {args.episodes} "
          f"episodes of at most {args.max_steps} steps; ParallelEvaluator with "
          f"{args.workers} processes; torch threads {torch.get_num_threads()}")
    print("| environment | evaluator | seconds | genomes/s | env steps/s | same fitnesses |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.environments:
            nc = NeuroevolutionConfig(environments=[env_id], seeds=[0],
                                      population=args.population,
                                      generations=args.generations, episodes=args.episodes,
                                      max_steps=args.max_steps)
            gens, config = generations(env_id, nc, Path(tmp))
            count = sum(len(g) for g in gens)
            results = {}
            serial = Evaluator(env_id, nc, 0)
            t = time.perf_counter()
            fits = []
            for genomes in gens:
                for g in genomes:
                    net = neat.nn.FeedForwardNetwork.create(g, config)
                    fits.append(serial(lambda o: int(np.argmax(net.activate(o)))))
            results["neat-python, one genome at a time"] = (time.perf_counter() - t, fits)
            steps = serial.steps
            _WORKER.clear()
            _WORKER.update(env_id=env_id, nc=nc)  # inherited by the forked workers
            with neat.ParallelEvaluator(args.workers, _score) as parallel:
                t = time.perf_counter()
                fits = []
                for genomes in gens:
                    pairs = list(enumerate(copy.deepcopy(genomes)))
                    parallel.evaluate(pairs, config)
                    fits += [g.fitness for _, g in pairs]
                results[f"neat-python ParallelEvaluator ({args.workers})"] = (
                    time.perf_counter() - t, fits)
            vector = ((lambda n: TrackVectorEnv(n, max_steps=nc.max_steps))
                      if env_id == TRACK_ID else None)
            tensor = TensorEvaluator(lambda: _make(env_id, nc.max_steps), serial.seeds, vector)
            t = time.perf_counter()
            fits = [f for genomes in gens for f in tensor(genomes, config)]
            results["neuroprune tensor evaluator"] = (time.perf_counter() - t, fits)
            tensor.close()
            reference = next(iter(results.values()))[1]
            for label, (seconds, fits) in results.items():
                print(f"| {env_id} | {label} | {seconds:.2f} | {count / seconds:,.0f} | "
                      f"{steps / seconds:,.0f} | {'yes' if fits == reference else 'NO'} |")


if __name__ == "__main__":
    main()
