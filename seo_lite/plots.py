"""Every figure goes through here, in one style, built from run directories.

Figures never come from variables left in a notebook: each function takes
runs read by :func:`seo_lite.runs.load_run` (or the folders themselves), so a
figure can be rebuilt by one command long after the notebook closed.  Each
figure names the models that made it in a footnote.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

if "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # scripts and the CLI write files; notebooks show inline

import matplotlib.pyplot as plt  # noqa: E402

PALETTE = {"with": "#1b6ca8", "without": "#9aa5b1", "accent": "#d1495b", "good": "#2e933c",
           "neutral": "#4a4e69"}
SERIES = ["#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6a9f"]


def use_style() -> None:
    """The one style of the project's figures."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False,
        "axes.prop_cycle": matplotlib.cycler(color=SERIES),
    })


def figure(width: float = 6.0, height: float = 3.6, ncols: int = 1):
    use_style()
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, (axes[0, 0] if ncols == 1 else list(axes[0]))


def models_note(config) -> str:
    gen, opt = config.generator, config.optimizer
    who = f"generator {gen}" + ("" if opt == gen else f", optimizer {opt}")
    return f"{config.task} | {who} | seed {config.seed}"


def footnote(fig, text: str) -> None:
    fig.text(0.01, -0.02, text, fontsize=7.5, color="#555555", ha="left", va="top")


def save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fit_ylim(ax) -> None:
    """Scores live in [0, 1]; zoom to the data but keep 0 in view."""
    import numpy as np

    ys = [np.asarray(l.get_ydata(), dtype=float) for l in ax.get_lines()]
    ys = [y[~np.isnan(y)] for y in ys]
    top = max((float(y.max()) for y in ys if y.size), default=1.0)
    ax.set_ylim(-0.02, min(1.02, max(0.2, top * 1.25 + 0.05)))


def _as_run(run_or_dir):
    if isinstance(run_or_dir, (str, os.PathLike)):
        from .runs import load_run

        return load_run(run_or_dir)
    return run_or_dir, None


def learning_curve(run_or_dir, ax=None, label: str | None = None, final: dict | None = None):
    """v(E_t) on each step's D_t, the best candidate's score, and accepted updates;
    with ``final.json`` also the dev score of each experience E_t."""
    run, fin = _as_run(run_or_dir)
    final = final or fin
    own = ax is None
    if own:
        fig, ax = figure()
    steps = [s.step + 1 for s in run.steps]
    cur = [s.decision.current_score for s in run.steps]
    best = [s.decision.best_score for s in run.steps]
    if any(v is not None for v in cur):
        ax.plot(steps, cur, "o-", color=PALETTE["with"], label=label or "E_t on D_t")
        ax.plot(steps, [b if b is not None else float("nan") for b in best], "x", color=PALETTE["neutral"],
                label="best candidate on D_t")
    acc = [(s.step + 1, s.decision.best_score) for s in run.steps if s.decision.accepted]
    if acc and acc[0][1] is not None:
        ax.scatter(*zip(*acc), s=110, facecolors="none", edgecolors=PALETTE["good"], linewidths=2,
                   label="update accepted", zorder=3)
    if final and final.get("curve"):
        xs = [c["step"] for c in final["curve"]]
        ax.step(xs, [c["dev"] for c in final["curve"]], where="post", color=PALETTE["accent"],
                label="E_t on dev")
    ax.set_xlabel("SEO step t")
    ax.set_ylabel("mean score")
    _fit_ylim(ax)
    ax.set_title("Learning curve")
    ax.legend(fontsize=8, loc="best")
    if own:
        footnote(fig, models_note(run.config))
        return fig
    return ax


def before_after(final: dict, config, ax=None):
    """Dev/test score without and with the learned experience, with 95% CIs."""
    own = ax is None
    if own:
        fig, ax = figure(4.6, 3.4)
    splits = [s for s in ("dev", "test") if s in final.get("comparisons", {})]
    for i, split in enumerate(splits):
        comp = final["comparisons"][split]
        for j, (key, name) in enumerate((("without", "without E"), ("with", "with E"))):
            est = comp[key]["score"]
            x = i + (j - 0.5) * 0.36
            ax.bar(x, est["mean"], width=0.34, color=PALETTE[key],
                   label=name if i == 0 else None)
            ax.errorbar(x, est["mean"], yerr=[[est["mean"] - est["low"]], [est["high"] - est["mean"]]],
                        color="black", capsize=3, lw=1)
    ax.set_xticks(range(len(splits)), [f"{s} (n={final['comparisons'][s]['with']['score']['n']})"
                                       for s in splits])
    ax.set_ylabel("mean score")
    top = max(c[k]["score"]["high"] for c in final["comparisons"].values() for k in ("with", "without"))
    ax.set_ylim(0, min(1.05, max(0.2, top * 1.2 + 0.05)))
    ax.set_title("Before / after SEO")
    ax.legend(fontsize=8)
    if own:
        footnote(fig, models_note(config))
        return fig
    return ax


def run_summary(run_dir: str | os.PathLike) -> Path:
    """The quick-start figure of one run: learning curve + before/after, saved
    as ``<run_dir>/figures/summary.png``."""
    from .runs import load_run

    run, final = load_run(run_dir)
    fig, axes = figure(10, 3.6, ncols=2 if final else 1)
    axes = axes if isinstance(axes, list) else [axes]
    learning_curve(run, ax=axes[0], final=final)
    if final:
        before_after(final, run.config, ax=axes[1])
    footnote(fig, models_note(run.config))
    return save(fig, Path(run_dir) / "figures" / "summary.png")


def runs_in(root: str | os.PathLike) -> Sequence[Path]:
    root = Path(root)
    return sorted(p.parent for p in root.glob("*/config.json"))
