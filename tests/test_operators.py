import copy
import pickle

import pytest
import torch

from neuroprune.evolution.genome import MaskIndividual, mask_individual
from neuroprune.evolution.operators import cx_kept_sets, mut_swap
from neuroprune.masks import check_bits, make_layout, random_bits

SHAPES = {"a": (50, 20), "b": (10, 50)}


@pytest.mark.parametrize("allocation", ["uniform", "global", "erk"])
def test_crossover_keeps_sparsity_and_common_connections(allocation):
    layout = make_layout(SHAPES, 0.9, allocation)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a, b = random_bits(layout, g), random_bits(layout, g)
        c1, c2 = cx_kept_sets(a, b, layout, g)
        check_bits(layout, c1)
        check_bits(layout, c2)
        both = a & b
        assert bool((c1 & both).eq(both).all()) and bool((c2 & both).eq(both).all())
        assert not bool((c1 & ~(a | b)).any())  # nothing comes from neither parent
        assert torch.equal(c1 | c2, a | b)      # the children split the parents' kept sets


@pytest.mark.parametrize("rate", [0.01, 0.2, 1.0])
def test_mutation_keeps_sparsity_and_moves_rate_of_kept(rate):
    layout = make_layout(SHAPES, 0.9, "uniform")
    g = torch.Generator().manual_seed(1)
    bits = random_bits(layout, g)
    out = mut_swap(bits, layout, rate, g)
    check_bits(layout, out)
    moved = int((bits & ~out).sum())
    expected = sum(max(1, min(round(rate * k), k, (stop - start) - k))
                   for start, stop, k in layout.units)
    assert moved == expected


def test_deap_individuals_pickle_and_copy():
    ind = mask_individual(torch.tensor([True, False, True]))
    ind.fitness.values = (0.5,)
    for clone in (pickle.loads(pickle.dumps(ind)), copy.deepcopy(ind)):
        assert isinstance(clone, MaskIndividual)
        assert clone == ind and clone.fitness.values == (0.5,)


def test_genomes_leave_deap_creator_alone():
    from deap import creator
    before = set(vars(creator))
    ind = mask_individual(torch.tensor([True]))
    pickle.loads(pickle.dumps(ind))
    assert set(vars(creator)) == before


def test_guided_mutation_drops_the_lowest_scored_kept_connections():
    from neuroprune.evolution.operators import mut_guided
    layout = make_layout({"w": (1, 10)}, 0.6, "uniform")  # 4 kept
    bits = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
    scores = torch.tensor([5.0, 0.1, 3.0, 0.2, 0, 0, 0, 0, 0, 0])
    out = mut_guided(bits, layout, 0.5, scores, torch.Generator().manual_seed(0))
    check_bits(layout, out)
    assert out[0] and out[2] and not out[1] and not out[3]  # 0.1 and 0.2 dropped
