"""Variation operators on whole populations of masks: exact counts, what they keep."""

import copy
import pickle

import pytest
import torch

from neuroprune.evolution.genome import MaskIndividual, MaskPopulation
from neuroprune.evolution.operators import (Draws, choose, cx_kept_sets, mut_guided, mut_swap,
                                            random_rows, unit_counts)
from neuroprune.masks import make_layout

SHAPES = {"a": (50, 20), "b": (10, 50)}


def _counts(layout):
    return torch.tensor([k for _, _, k in layout.units])


@pytest.mark.parametrize("allocation", ["uniform", "global", "erk"])
def test_crossover_keeps_sparsity_and_common_connections(allocation):
    layout = make_layout(SHAPES, 0.9, allocation)
    draws = Draws(0)
    a, b = random_rows(layout, 40, draws), random_rows(layout, 40, draws)
    c1, c2 = cx_kept_sets(a, b, layout, draws)
    for c in (c1, c2):
        assert (unit_counts(layout, c) == _counts(layout)).all()
        assert ((c & a & b) == (a & b)).all()  # what both parents keep, both children keep
        assert not (c & ~(a | b)).any()         # nothing comes from neither parent
    assert torch.equal(c1 | c2, a | b)          # the children split the parents' kept sets


@pytest.mark.parametrize("rate", [0.01, 0.2, 1.0])
def test_mutation_keeps_sparsity_and_moves_rate_of_kept(rate):
    layout = make_layout(SHAPES, 0.9, "uniform")
    draws = Draws(1)
    bits = random_rows(layout, 30, draws)
    out = mut_swap(bits, layout, rate, draws)
    assert (unit_counts(layout, out) == _counts(layout)).all()
    moved = (bits & ~out).sum(1)
    expected = sum(max(1, min(round(rate * k), k, (stop - start) - k))
                   for start, stop, k in layout.units)
    assert (moved == expected).all()


def test_choices_are_exact_and_uniform():
    draws = Draws(2)
    cand = torch.zeros(20000, 10, dtype=torch.bool)
    cand[:, :6] = True
    for want in (1, 2, 5):  # the rejection path, and the complement (5 of 6)
        got = choose(cand, torch.full((20000,), want), draws)
        assert (got.sum(1) == want).all() and not (got & ~cand).any()
        freq = got[:, :6].float().mean(0)
        assert torch.allclose(freq, torch.full((6,), want / 6), atol=0.02)
    sparse = torch.zeros(4000, 1000, dtype=torch.bool)
    sparse[:, [3, 500, 999]] = True  # few candidates: chosen by sorted keys
    got = choose(sparse, torch.full((4000,), 1), draws)
    assert (got.sum(1) == 1).all()
    assert torch.allclose(got[:, [3, 500, 999]].float().mean(0), torch.full((3,), 1 / 3),
                          atol=0.03)


def test_random_rows_place_ones_uniformly():
    layout = make_layout({"w": (1, 10)}, 0.7, "uniform")
    rows = random_rows(layout, 20000, Draws(3))
    assert (rows.sum(1) == 3).all()
    assert torch.allclose(rows.float().mean(0), torch.full((10,), 0.3), atol=0.02)


def test_guided_mutation_drops_the_lowest_scored_kept_connections():
    layout = make_layout({"w": (1, 10)}, 0.6, "uniform")  # 4 kept
    bits = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    scores = torch.tensor([[5.0, 0.1, 3.0, 0.2, 0, 0, 0, 0, 0, 0]])
    out = mut_guided(bits, layout, 0.5, scores, Draws(0))[0]
    assert int(out.sum()) == 4
    assert out[0] and out[2] and not out[1] and not out[3]  # 0.1 and 0.2 dropped


def test_individuals_copy_and_pickle_their_row_only():
    pop = MaskPopulation(torch.tensor([[True, False, True], [False, True, True]]))
    ind = pop.individuals[1]
    ind.fitness.values = (0.5,)
    for clone in (pickle.loads(pickle.dumps(ind)), copy.deepcopy(ind)):
        assert isinstance(clone, MaskIndividual) and clone.population is None
        assert clone == ind and clone.fitness.values == (0.5,)
        assert clone.bits.tolist() == [False, True, True]
    pop.bits[1, 0] = True  # the population changes; the copy does not
    assert clone.bits.tolist() == [False, True, True]


def test_genomes_leave_deap_creator_alone():
    from deap import creator
    before = set(vars(creator))
    pop = MaskPopulation(torch.ones(2, 3, dtype=torch.bool))
    pickle.loads(pickle.dumps(copy.deepcopy(pop.individuals[0])))
    assert set(vars(creator)) == before
