"""Report of neuroevolution runs: reward against environment steps for NEAT and Q-learning
(mean ± std over the seeds), and the best evolved topology of each environment."""

from __future__ import annotations

import warnings

import numpy as np

from .document import Document
from ..rundir import FILES
from .inputs import Run
from .style import band, pyplot, styles, REFERENCE

METHODS = {"neat": "NEAT", "qlearning": "tabular Q-learning", "dqn": "DQN"}


def _slug(env_id: str) -> str:
    return env_id.replace("/", "_")


def _label(method: str, run: Run, runs: list[Run]) -> str:
    name = METHODS.get(method, method)
    return f"{name} ({run.name})" if len(runs) > 1 else name


def curves(df, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and std over seeds of the reward at each ``grid`` step (each seed's curve as a
    step function: the last point at or before x; NaN before its first point)."""
    ys = []
    for _, c in df.sort_values("env_steps").groupby("seed"):
        xs, vs = c.env_steps.to_numpy(float), c.reward.to_numpy(float)
        idx = np.searchsorted(xs, grid, side="right") - 1
        ys.append(np.where(idx >= 0, vs[np.maximum(idx, 0)], np.nan))
    ys = np.array(ys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(ys, 0), np.nanstd(ys, 0), len(ys)


def reward_figure(doc: Document, runs: list[Run]) -> None:
    plt = pyplot()
    envs = list(dict.fromkeys(e for r in runs for e in r.results.environment))
    pairs = [(r, m) for r in runs for m in dict.fromkeys(r.results.method)]
    look = styles(_label(m, r, runs) for r, m in pairs)
    fig, axes = plt.subplots(1, len(envs), figsize=(5.2 * len(envs), 3.8), squeeze=False)
    for ax, env in zip(axes[0], envs):
        top = max(r.results[r.results.environment == env].env_steps.max() for r in runs
                  if env in set(r.results.environment))
        grid = np.linspace(0, top, 200)
        for r, m in pairs:
            df = r.results[(r.results.environment == env) & (r.results.method == m)]
            if df.empty:
                continue
            name = _label(m, r, runs)
            mean, std, n = curves(df, grid)
            c = look[name]["color"]
            ax.plot(grid, mean, color=c,
                    label=f"{name}, {n} seed{'s' if n > 1 else ''}" if env == envs[0] else None)
            if n > 1:
                band(ax, grid, mean, std, c)
        ax.set(xlabel="environment steps", ylabel="evaluation reward (mean return)", title=env)
    fig.legend(loc="lower center", ncol=min(len(pairs), 3), bbox_to_anchor=(0.5, -0.02),
               frameon=False)
    fig.tight_layout(rect=(0, 0.09 + 0.04 * ((len(pairs) - 1) // 3), 1, 1))
    doc.figure("rewards", fig, "Reward of the greedy policy against the environment steps spent "
               "learning: NEAT's generation champion, Q-learning's policy scored every "
               "q_eval_every steps on the same step budget; line: mean over seeds, band: ± std.")


def topology_figure(doc: Document, run: Run, env: str, runs: list[Run]) -> bool:
    """The best genome of ``env`` drawn from its exported file: inputs left, outputs right,
    hidden nodes by their depth; red connections positive, blue negative, width |w|."""
    from ..masks.io import read_mask_file

    path = run.path / FILES.genome(_slug(env))
    if not path.is_file():
        return False
    mask, weights, meta = read_mask_file(path)
    on, weight = mask["weight"].bool(), weights["weight"]
    keys = list(meta["node_keys"])
    n_in, n_out = int(meta["inputs"]), int(meta["outputs"])
    depth = np.zeros(len(keys))
    edges = on.nonzero().tolist()
    for _ in keys:  # longest path from the inputs (the network is feed-forward)
        for i, j in edges:
            depth[j] = max(depth[j], depth[i] + 1)
    outs = list(range(n_in, n_in + n_out))
    depth[:n_in] = 0
    depth[outs] = max(depth.max(), 1)
    pos = {}
    for d in sorted(set(depth)):
        col = [i for i in range(len(keys)) if depth[i] == d]
        for k, i in enumerate(col):
            pos[i] = (d, (len(col) - 1) / 2 - k)
    plt = pyplot()
    height = max(sum(depth == d) for d in set(depth))
    fig, ax = plt.subplots(figsize=(5.5, 1.0 + 0.55 * height))
    top = max((abs(float(weight[i, j])) for i, j in edges), default=1.0) or 1.0
    for i, j in edges:
        w = float(weight[i, j])
        ax.annotate("", pos[j], pos[i], arrowprops=dict(
            arrowstyle="-|>", color="tab:red" if w > 0 else "tab:blue", shrinkA=11, shrinkB=11,
            lw=0.6 + 2.4 * abs(w) / top, alpha=0.8))
    colours = {"input": "lightgray", "output": "gold", "hidden": "white"}
    for kind in colours:
        idx = [i for i in pos if (i < n_in) == (kind == "input") and
               (i in outs) == (kind == "output")]
        ax.scatter([pos[i][0] for i in idx], [pos[i][1] for i in idx], s=420, c=colours[kind],
                   edgecolors=REFERENCE, zorder=3, label=kind if idx else None)
    for i, (x, y) in pos.items():
        ax.text(x, y, str(keys[i]), ha="center", va="center", fontsize=7, zorder=4)
    ax.set_xlim(-0.4, depth.max() + 0.4)
    ax.set_ylim(-height / 2 - 0.3, height / 2 + 0.3)
    ax.axis("off")
    hidden = len(keys) - n_in - n_out
    ax.set_title(f"{env}: best NEAT genome{f' ({run.name})' if len(runs) > 1 else ''}\n"
                 f"{hidden} hidden node{'s' if hidden != 1 else ''}, {len(edges)} enabled "
                 f"connection{'s' if len(edges) != 1 else ''}, reward {meta['fitness']:.1f}",
                 fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, labelspacing=1.4,
              borderpad=1.0)
    name = f"topology_{_slug(env)}" + (f"_{run.name}" if len(runs) > 1 else "")
    doc.figure(name, fig, f"The best genome NEAT evolved for {env} over all seeds (node keys as "
               "neat-python numbers them: inputs negative, outputs from 0); arrows: enabled "
               "connections, red positive, blue negative, width ∝ |weight|.")
    return True


def report(runs: list[Run], doc: Document) -> None:
    doc.heading(f"Neuroevolution ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    rows = []
    for r in runs:
        df = r.results
        for (env, m), g in df.groupby(["environment", "method"], sort=False):
            finals = g.sort_values("env_steps").groupby("seed").tail(1)
            rows.append([f"`{r.name}`", r.status, env, METHODS.get(m, m), len(finals),
                         f"{finals.reward.mean():.2f} ± {finals.reward.std(ddof=0):.2f}",
                         f"{finals.env_steps.mean():,.0f}"])
    doc.table(["folder", "status", "environment", "method", "seeds", "final reward (mean ± std)",
               "environment steps"], rows)
    reward_figure(doc, runs)
    drawn = [topology_figure(doc, r, env, runs) for r in runs
             for env in dict.fromkeys(r.results.environment)]
    if not any(drawn):
        doc.para("No best genome exported yet: the topology comes when the run finishes.")
