"""Masks against references computed here from each paper's formula, on fixed small networks.

Each reference is written from the paper (and its authors' code) with plain autograd on a
plain ``nn.Module``, not through the population engine. Where only integer counts and
comparisons of exact values decide the mask (magnitudes, ERK, L1 norms, BatchNorm scales,
RigL's update), the masks must be equal. Where the scores come out of gradients (SNIP, GraSP,
SynFlow), the engine's batched float kernels and the module's sum in another order, so two
weights whose scores agree to rounding may trade places at the threshold (and SynFlow scores
every weight behind a dead neuron exactly 0, a tie): there the masks must share a Jaccard
index of at least 0.99.
"""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from neuroprune.config import load_config
from neuroprune.masks import bits_to_mask, flatten, make_layout
from neuroprune.models import build_model

from helpers import mask_search

MLP = {"name": "mlp", "widths": [24, 16]}
CONV_BN = {"name": "conv2", "width": 0.125, "widths": [16], "batch_norm": True}


def _search(method, model, sparsity=0.9, allocation="erk", batch_size=64, **sparsity_extra):
    tree = {"data": {"dataset": "digits"}, "device": "cpu", "model": model,
            "sparsity": {"target": sparsity, "allocation": allocation, **sparsity_extra},
            "training": {"epochs": 1, "lr": 0.05, "batch_size": batch_size},
            "method": method}
    return mask_search(load_config(tree=tree))


def _find(search, change_init=None):
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        if change_init is not None:
            ctx = dataclasses.replace(ctx, init=change_init(ctx.init))
        return ctx, search.method.find(ctx)


def _module(search, state):
    model = build_model(search.bench.spec)
    model.load_state_dict(state)
    return model.double()


def _global_top(layout, scores, kept):
    """The ``kept`` highest of ``scores`` (name -> tensor) over all layers at once."""
    flat = flatten(layout, scores)
    bits = torch.zeros(len(flat), dtype=torch.bool)
    bits[torch.topk(flat, kept).indices] = True
    return bits


def _jaccard(a, b):
    return float((a & b).sum()) / float((a | b).sum())


def test_magnitude_global_keeps_the_largest_initial_weights_of_all_layers():
    ctx, res = _find(_search({"name": "magnitude"}, MLP, 0.9, "global"))
    ref = _global_top(ctx.layout, {k: ctx.init[k].abs() for k in ctx.layout.names},
                      round(0.1 * ctx.layout.numel))
    assert torch.equal(res.bits, ref)


def _snip_reference(search, ctx, training):
    model = _module(search, ctx.init).train(training)
    x, y = ctx.data.train_x.double(), ctx.data.train_y
    params = dict(model.named_parameters())
    w = [params[k] for k in ctx.layout.names]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), w)
    return _global_top(ctx.layout, {k: (g * p).abs() for k, g, p in
                                    zip(ctx.layout.names, grads, w)}, ctx.layout.kept)


def test_snip_paper_keeps_the_global_top_of_g_times_w_in_inference_mode():
    # one batch holding the whole training split: the sensitivity of Lee et al. (2019) on it
    search = _search({"name": "snip"}, CONV_BN, 0.9, "erk", batch_size=4096)
    ctx, res = _find(search)
    ref = _snip_reference(search, ctx, training=False)  # the authors prune with is_train off
    assert _jaccard(res.bits, ref) >= 0.99
    assert _jaccard(res.bits, _snip_reference(search, ctx, training=True)) < 0.99
    assert res.info["allocation"] == "global"


def test_grasp_paper_removes_the_global_top_of_minus_hg_times_w():
    from neuroprune.methods.scores import balanced_batch
    search = _search({"name": "grasp"}, CONV_BN, 0.9, "erk")
    ctx, res = _find(search)
    model = _module(search, ctx.init).train()  # the authors score a network in training mode
    idx = balanced_batch(ctx.data.train_y, 10, ctx.seed)
    x, y = ctx.data.train_x[idx].double(), ctx.data.train_y[idx]
    params = dict(model.named_parameters())
    w = [params[k] for k in ctx.layout.names]

    def loss():
        return nn.functional.cross_entropy(model(x) / 200.0, y)

    g = [t.detach() for t in torch.autograd.grad(loss(), w)]
    grads = torch.autograd.grad(loss(), w, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, grads)), w)
    # the weights whose removal reduces the gradient flow least, -w * Hg highest, go
    ref = _global_top(ctx.layout, {k: w_ * h for k, w_, h in zip(ctx.layout.names, w, hg)},
                      ctx.layout.kept)
    assert _jaccard(res.bits, ref) >= 0.99


def test_synflow_paper_iterates_the_synaptic_saliency_of_the_product_loss():
    iterations = 10
    search = _search({"name": "synflow", "iterations": iterations}, MLP, 0.95, "erk")

    def zero_biases(init):  # R is then exactly 1^T |W3| |W2| |W1| 1 (Tanaka et al., eq. 2)
        return {k: torch.zeros_like(v) if k.endswith("bias") else v for k, v in init.items()}

    ctx, res = _find(search, zero_biases)
    layout = ctx.layout
    weights = [ctx.init[k].double().abs() for k in layout.names]
    bits = torch.ones(layout.numel, dtype=torch.bool)
    density = 1.0 - layout.sparsity
    for i in range(1, iterations + 1):
        masks = bits_to_mask(layout, bits)
        w = [(a * masks[k]).requires_grad_(True) for k, a in zip(layout.names, weights)]
        signal = torch.ones(weights[0].shape[1], dtype=torch.float64)
        for layer in w:
            signal = layer @ signal
        grads = torch.autograd.grad(signal.sum(), w)
        scores = flatten(layout, {k: (g * a).abs().detach()
                                  for k, g, a in zip(layout.names, grads, w)})
        kept = layout.kept if i == iterations else \
            round(density ** (i / iterations) * layout.numel)
        scores[~bits] = -1.0  # what an earlier round removed stays removed
        bits = torch.zeros_like(bits)
        bits[torch.topk(scores, kept).indices] = True
    assert _jaccard(res.bits, bits) >= 0.99


def _synflow_reference(search, ctx, iterations, training):
    """Tanaka et al.'s prune loop on the module: its state dict made absolute (the authors'
    ``linearize``), an all-ones input, ``|w * dR/dw|`` ranked over all layers each round."""
    layout = ctx.layout
    model = _module(search, ctx.init).train(training)
    params = {k: v.detach().abs() for k, v in model.named_parameters()}
    buffers = {k: v.abs() if v.is_floating_point() else v for k, v in model.named_buffers()}
    ones = torch.ones(1, *ctx.data.train_x.shape[1:], dtype=torch.float64)
    bits = torch.ones(layout.numel, dtype=torch.bool)
    density = 1.0 - layout.sparsity
    for i in range(1, iterations + 1):
        masks = bits_to_mask(layout, bits)
        w = {k: (params[k] * masks[k]).requires_grad_(True) for k in layout.names}
        out = torch.func.functional_call(model, {**params, **w, **buffers}, (ones,))
        grads = torch.autograd.grad(out.sum(), list(w.values()))
        scores = flatten(layout, {k: (g * w[k]).abs().detach() for k, g in zip(w, grads)})
        kept = layout.kept if i == iterations else \
            round(density ** (i / iterations) * layout.numel)
        scores[~bits] = -1.0
        bits = torch.zeros_like(bits)
        bits[torch.topk(scores, kept).indices] = True
    return bits


def test_synflow_paper_scores_a_batchnorm_network_in_inference_mode():
    # the authors' prune loop calls model.eval(): BatchNorm runs on its running statistics
    search = _search({"name": "synflow", "iterations": 10}, CONV_BN, 0.9, "erk")
    ctx, res = _find(search)
    assert _jaccard(res.bits, _synflow_reference(search, ctx, 10, training=False)) >= 0.99
    assert _jaccard(res.bits, _synflow_reference(search, ctx, 10, training=True)) < 0.99


def test_imp_paper_removes_the_smallest_trained_weights_of_all_layers():
    # one round of 50%; with a learning-rate restart the result starts from the trained
    # weights the round pruned by (open_lth's sparse_global)
    search = _search({"name": "imp", "rate": 0.5, "round_epochs": 1, "retrain": "lr_restart"},
                     MLP, 0.5, "erk")
    ctx, res = _find(search)
    layout = ctx.layout
    trained = flatten(layout, {k: res.init[k].abs() for k in layout.names})
    prune = layout.numel - layout.kept
    threshold = torch.sort(trained).values[prune - 1]
    assert torch.equal(res.bits, trained > threshold)


def test_imp_global_step_prunes_among_the_remaining_weights_only():
    from neuroprune.methods.preset import ranking_layout
    from neuroprune.methods.schedule import prune_to
    shapes = {"a": (30, 20), "b": (10, 30)}
    layout = make_layout(shapes, 0.75, "erk")
    ranked = ranking_layout(SimpleNamespace(layout=layout), "paper")
    g = torch.Generator().manual_seed(0)
    trained = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    current = torch.rand(layout.numel, generator=g) < 0.5
    after = prune_to(ranked, 0.75, {k: v.abs() for k, v in trained.items()}, current)
    # open_lth: prune the smallest |w| among the unpruned, over all layers
    w = flatten(layout, trained).abs()
    n_prune = int(current.sum()) - round(0.25 * layout.numel)
    threshold = torch.sort(w[current]).values[n_prune - 1]
    assert torch.equal(after, current & (w > threshold))


def _erk_reference(shapes, density):
    """Evci et al. (2020), section 3: density_l = eps * (sum of the dims) / (their product),
    eps solved for the budget; a layer that would exceed 1 is dense and eps solved again."""
    n = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    dense = set()
    while True:
        rest = [i for i in range(len(shapes)) if i not in dense]
        eps = (density * sum(n) - sum(n[i] for i in dense)) / sum(raw[i] * n[i] for i in rest)
        over = [i for i in rest if eps * raw[i] > 1]
        if not over:
            return [n[i] if i in dense else round(eps * raw[i] * n[i]) for i in range(len(n))]
        dense.add(max(over, key=lambda i: raw[i]))  # the densest first, as RigL's code


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_erk_allocation_is_the_rigl_paper_rule(sparsity):
    shapes = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 256), (84, 120), (10, 84)]  # LeNet-5
    layout = make_layout({str(i): s for i, s in enumerate(shapes)}, sparsity, "erk")
    assert [k for *_, k in layout.units] == _erk_reference(shapes, 1 - sparsity)


def _kept_units(search, res, names):
    """``{layer: [units] bool}``: the output units of ``names`` a structured mask keeps."""
    mask = bits_to_mask(search.bench.structure.layout, res.bits)
    return {k: mask[k].reshape(mask[k].shape[0], -1).any(1) for k in names}


def _top_units(scores, kept):
    """The ``kept`` highest units over all layers, every layer keeping its best one (the
    template never removes a layer's last unit)."""
    flat = torch.cat(list(scores.values()))
    best = torch.cat([s == s.max() for s in scores.values()])
    keep = torch.zeros(len(flat), dtype=torch.bool)
    keep[torch.topk(torch.where(best, math.inf, flat), kept).indices] = True
    return keep


def test_l1_filter_removes_the_filters_of_smallest_l1_norm_over_their_layer_mean():
    model = {"name": "conv2", "width": 0.125, "widths": [16]}
    search = _search({"name": "l1_filter", "dense_epochs": 1}, model, 0.5,
                     structure="all", budget="flops", latency_repeats=0)
    ctx, res = _find(search)
    hidden = list(search.bench.structure.weights)[:-1]  # every layer but the output
    norms = {k: res.init[k].abs().reshape(res.init[k].shape[0], -1).sum(1) for k in hidden}
    kept = torch.cat(list(_kept_units(search, res, hidden).values()))
    ref = _top_units({k: v / v.mean() for k, v in norms.items()}, int(kept.sum()))
    assert 0 < int(kept.sum()) < len(kept) and torch.equal(kept, ref)


@pytest.mark.parametrize("normalise", [False, True])
def test_oicsr_removes_the_channels_of_least_out_in_group_energy(normalise):
    from neuroprune.methods.oicsr import OutInNorms
    search = _search({"name": "oicsr", "dense_epochs": 1, "normalise": normalise}, MLP, 0.5,
                     structure="neuron", budget="flops", latency_repeats=0)
    ctx, res = _find(search)
    space = search.bench.structure
    linears = list(space.weights)
    hidden, w = linears[:-1], res.init
    # Li et al. (2019): a channel's out-in group is its row of layer l (with its bias, which
    # goes with it) and its column of layer l+1; its energy is the group's sum of squares
    energy = {k: w[k].square().sum(1) + w[k.replace("weight", "bias")].square()
              + w[nxt].square().sum(0) for k, nxt in zip(hidden, linears[1:])}
    kept = torch.cat(list(_kept_units(search, res, hidden).values()))
    paper = _top_units(energy, int(kept.sum()))  # raw energies compared across layers
    ours = _top_units({k: v / v.mean() for k, v in energy.items()}, int(kept.sum()))
    assert 0 < int(kept.sum()) < len(kept) and not torch.equal(paper, ours)
    assert torch.equal(kept, ours if normalise else paper)
    # the regulariser is the sum of the groups' L2 norms
    penalty = OutInNorms(space, torch.ones(1)).penalty(space.rows_of(
        {k: v[None] for k, v in w.items() if k in space.layout.names}))
    want = sum(e.sqrt().sum() for e in energy.values())
    torch.testing.assert_close(penalty[0], want, rtol=1e-5, atol=1e-5)


def _apart(init):
    """BatchNorm scales of two sizes: the first layer's near 0.3, the second's near 3."""
    g = torch.Generator().manual_seed(0)
    return {**init, "1.weight": 0.3 + 0.1 * torch.rand(8, generator=g),
            "4.weight": 3.0 + torch.rand(8, generator=g)}


@pytest.mark.parametrize("normalise", [False, True])
def test_slimming_removes_the_channels_under_one_global_threshold_on_raw_scales(normalise):
    search = _search({"name": "slimming", "dense_epochs": 1, "normalise": normalise}, CONV_BN,
                     0.5, structure="channel", budget="flops", latency_repeats=0)
    ctx, res = _find(search, _apart)
    assert bool(search.bench.structure.has_scale.all())
    model = build_model(search.bench.spec)
    scales = [f"{n}.weight" for n, m in model.named_modules()
              if isinstance(m, nn.BatchNorm2d)]
    kept = torch.cat(list(_kept_units(search, res, scales).values()))
    gammas = {k: res.init[k].abs() for k in scales}
    paper = _top_units(gammas, int(kept.sum()))  # Liu et al.: a percentile of all |gamma|
    ours = _top_units({k: v / v.mean() for k, v in gammas.items()}, int(kept.sum()))
    assert 0 < int(kept.sum()) < len(kept) and not torch.equal(paper, ours)
    assert torch.equal(kept, ours if normalise else paper)


def test_rigl_update_may_regrow_what_it_dropped_as_the_authors_code():
    from neuroprune.engine import TrainState
    from neuroprune.methods.dst import DSTParams
    from neuroprune.methods.rigl import RigLUpdater
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (2, 12, 10), "b": (2, 4, 12)}
    params, masks = {}, {}
    for k, s in shapes.items():
        params[k] = torch.randn(s, generator=g).requires_grad_()
        params[k].grad = torch.randn(s, generator=g)
        masks[k] = torch.zeros(s)
        for net in range(2):  # 30% kept, the same count in both networks
            keep = torch.randperm(math.prod(s[1:]), generator=g)[:round(0.3 * math.prod(s[1:]))]
            masks[k][net].view(-1)[keep] = 1.0
    # the smallest kept weight of network 0 gets the largest gradient: it must come back
    flat_w, flat_m = params["a"].detach()[0].view(-1), masks["a"][0].view(-1)
    smallest = torch.where(flat_m.bool(), flat_w.abs(), math.inf).argmin()
    params["a"].grad[0].view(-1)[smallest] = 100.0
    before = {k: m.clone() for k, m in masks.items()}
    weights = {k: v.detach().clone() for k, v in params.items()}
    upd = RigLUpdater(DSTParams(update_interval=1, drop_fraction=0.3))
    state = TrainState(p=2, params=params, buffers={}, masks=masks,
                       optimizer=torch.optim.SGD(list(params.values()), lr=0.1), settings=None,
                       seeds=torch.tensor([0, 1]), total_steps=100, forward=None,
                       evaluate=None, step=1)
    frac = upd.fraction(1, 100)
    upd.after_backward(state)
    regrown = 0
    for k in shapes:
        for net in range(2):
            m = before[k][net].view(-1).bool()
            w, grad = weights[k][net].view(-1).abs(), params[k].grad[net].view(-1).abs()
            n = round(frac * int(m.sum()))
            # Evci et al., Algorithm 1: drop the n smallest |w| of the kept ones, then grow
            # the n largest |grad| of all that is not kept after the drop
            dropped = torch.topk(torch.where(m, w, math.inf), n, largest=False).indices
            after_drop = m.clone()
            after_drop[dropped] = False
            grown = torch.topk(torch.where(after_drop, -math.inf, grad), n).indices
            ref = after_drop.clone()
            ref[grown] = True
            assert torch.equal(masks[k][net].view(-1).bool(), ref), (k, net)
            regrown += int(m[grown].sum())
    assert regrown >= 1 and bool(masks["a"][0].view(-1)[smallest])
