"""Random state is a search's own, also when searches share a process on several threads
(the trials of ``tune --batch``): torch's and Python's global generators are not."""

import random
import threading

import torch
from deap import tools

from neuroprune.engine import init_state
from neuroprune.evolution.random_state import DeapRandom
from neuroprune.models import ModelSpec


def _on_threads(fn, args, repeat=8):
    """``fn(arg)`` for every arg, all at once on their own threads, ``repeat`` times."""
    out = []
    for _ in range(repeat):
        results = [None] * len(args)
        start = threading.Barrier(len(args))

        def run(i):
            start.wait()
            results[i] = fn(args[i])
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.append(results)
    return out


def test_initial_weights_built_on_threads_equal_those_built_alone():
    spec = ModelSpec(name="mlp", input_shape=(64,), num_classes=10,
                     options={"widths": [256, 128]})
    seeds = [0, 1, 2, 3]
    alone = [init_state(spec, s) for s in seeds]
    for results in _on_threads(lambda s: init_state(spec, s), seeds):
        for a, b in zip(alone, results):
            assert all(torch.equal(a[k], b[k]) for k in a)
    first = next(iter(alone[0]))
    assert not torch.equal(alone[0][first], alone[1][first])


def test_deap_draws_on_threads_equal_those_drawn_alone_and_leave_the_global_state():
    def draws(seed):
        rng = DeapRandom(seed)
        got = []
        for _ in range(20):
            with rng.active():
                got += [(random.random(), random.randint(0, 99),
                         tools.selTournament(list(range(20)), 1, tournsize=3,
                                             fit_attr="real")[0]) for _ in range(200)]
        return got, rng.state

    random.seed(123)
    before = random.getstate()
    alone = [draws(s) for s in range(4)]
    assert random.getstate() == before  # the caller's global state is never touched
    for results in _on_threads(draws, list(range(4)), repeat=3):
        assert results == alone
    assert alone[0][0] != alone[1][0]


def test_a_checkpointed_deap_state_resumes_the_same_stream():
    rng = DeapRandom(0)
    with rng.active():
        [random.random() for _ in range(5)]
    resumed = DeapRandom(99)
    resumed.state = rng.state
    with rng.active():
        expected = [random.random() for _ in range(3)]
    with resumed.active():
        assert [random.random() for _ in range(3)] == expected


def test_the_random_module_functions_still_pickle_by_reference():
    import pickle
    from functools import partial
    draw = pickle.loads(pickle.dumps(partial(random.randint, 0, 9)))
    assert draw.func is random.randint and 0 <= draw() <= 9
