"""Every figure goes through here, in one style, built from run directories.

Figures never come from variables left in a notebook: each function takes
runs read by :func:`seo_lite.machinery.runs.load_run` (or the folders themselves), so a
figure can be rebuilt by one command long after the notebook closed.  Each
figure names the models that made it in a footnote.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

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


def chance_level(final: dict | None) -> float | None:
    """The accuracy of a uniform guess, 1/len(labels), when the run's task has
    labels (``final.json``'s ``task.labels``); None otherwise."""
    labels = ((final or {}).get("task") or {}).get("labels")
    return 1.0 / len(labels) if labels else None


def chance_line(ax, chance: float | None, label: str = "chance") -> None:
    """A dashed horizontal line at the chance level (nothing when ``chance`` is None)."""
    if chance is not None:
        ax.axhline(chance, color=PALETTE["without"], ls="--", lw=1.1, zorder=1,
                   label=f"{label} (1/{round(1 / chance)})" if chance > 0 else label)


def _integer_steps(ax) -> None:
    """SEO steps are whole numbers: no tick at 0.5 or 1.5."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _as_run(run_or_dir):
    if isinstance(run_or_dir, (str, os.PathLike)):
        from ..machinery.runs import load_run

        return load_run(run_or_dir)
    return run_or_dir, None


def learning_curve(run_or_dir, ax=None, label: str | None = None, final: dict | None = None,
                   chance: float | None | bool = True):
    """v(E_t) on each step's D_t, the best candidate's score, and accepted updates;
    with ``final.json`` also the dev score of each experience E_t.  ``chance``:
    True draws the chance level when the task has labels, a number draws that
    level, None or False draws none."""
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
    if chance is True:
        chance = chance_level(final)
    chance_line(ax, chance or None)
    ax.set_xlabel("SEO step t")
    ax.set_ylabel("mean score")
    _integer_steps(ax)
    _fit_ylim(ax)
    ax.set_title("Learning curve")
    ax.legend(fontsize=8, loc="best")
    if own:
        footnote(fig, models_note(run.config))
        return fig
    return ax


def before_after(final: dict, config, ax=None, chance: float | None | bool = True):
    """Dev/test score without and with the learned experience, with 95% CIs;
    ``chance`` as in :func:`learning_curve`."""
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
    if chance is True:
        chance = chance_level(final)
    chance_line(ax, chance or None)
    top = max([c[k]["score"]["high"] for c in final["comparisons"].values() for k in ("with", "without")]
              + [chance or 0.0])
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
    from ..machinery.runs import load_run

    run, final = load_run(run_dir)
    fig, axes = figure(10, 3.6, ncols=2 if final else 1)
    axes = axes if isinstance(axes, list) else [axes]
    learning_curve(run, ax=axes[0], final=final)
    if final:
        before_after(final, run.config, ax=axes[1])
    footnote(fig, models_note(run.config))
    return save(fig, Path(run_dir) / "figures" / "summary.png")


# -- figures across runs (built by seo_lite.lab.figures from run directories) ----------------------
def model_label(spec: str, options: dict | None = None, identity: dict | None = None) -> str:
    """``embedded (SmolLM2-135M-Instruct, load_in_4bit=True)``: a model spec, what it
    resolved to, and its options (secret-looking options are never shown)."""
    from ..method.config import is_secret_name

    bits = []
    name = (identity or {}).get("model")
    if name and name != spec:
        bits.append(str(name))
    bits += [f"{k}={v}" for k, v in sorted((options or {}).items()) if not is_secret_name(k)]
    return spec + (f" ({', '.join(bits)})" if bits else "")


def models_note_many(entries) -> str:
    """Footnote naming every generator and optimizer behind a figure.
    ``entries``: (config, final or None) pairs."""
    gens, opts, tasks, seeds = [], [], [], set()
    for config, final in entries:
        config = getattr(config, "config", config)          # a run or its config
        models = (final or {}).get("models", {})
        g = model_label(config.generator, config.generator_options, models.get("generator"))
        o = model_label(config.optimizer, config.optimizer_options, models.get("optimizer"))
        for lst, v in ((gens, g), (opts, o), (tasks, config.task)):
            if v not in lst:
                lst.append(v)
        seeds.add(config.seed)
    seed_txt = f"seeds {', '.join(map(str, sorted(seeds)))}" if seeds else ""
    return (f"{', '.join(tasks)} | generator {'; '.join(gens)} | optimizer {'; '.join(opts)}"
            + (f" | {seed_txt}" if seed_txt else ""))


def _clipped(est: dict, limits=None) -> tuple[float, float]:
    lo, hi = est["low"], est["high"]
    if limits is not None:
        lo, hi = max(lo, limits[0]), min(hi, limits[1])
    return lo, hi


def _interval(ax, x, est: dict, color="black", limits=None):
    """An error bar for an estimate; ``limits`` clips it to the values a score can take."""
    lo, hi = _clipped(est, limits)
    ax.errorbar(x, est["mean"], yerr=[[max(est["mean"] - lo, 0)], [max(hi - est["mean"], 0)]],
                color=color, capsize=3, lw=1)


def ablation_bars(groups: list[dict], ax=None, *, ylabel: str = "test score",
                  title: str = "Ablations", reference: float | None = None,
                  reference_label: str = "without experience", limits=None):
    """One bar per setting: the mean over seeds with its 95% interval (clipped to
    ``limits``), and a dot per seed.
    ``groups``: ``{"label", "estimate": {mean, low, high, n}, "values": [...]}``."""
    own = ax is None
    if own:
        fig, ax = figure(max(5.0, 1.1 * len(groups) + 1.5), 3.8)
    for i, g in enumerate(groups):
        color = PALETTE["with"] if g.get("kind", "setting") != "baseline" else PALETTE["good"]
        ax.bar(i, g["estimate"]["mean"], width=0.6, color=color, alpha=0.85)
        _interval(ax, i, g["estimate"], limits=limits)
        vals = g.get("values", [])
        if vals:
            offs = [(j - (len(vals) - 1) / 2) * 0.08 for j in range(len(vals))]
            ax.scatter([i + o for o in offs], vals, s=14, color="black", zorder=3,
                       label="one seed" if i == 0 else None)
    if reference is not None:
        ax.axhline(reference, color=PALETTE["without"], ls="--", lw=1.2, label=reference_label)
    ax.axhline(0, color="black", lw=0.6)
    import textwrap

    ax.set_xticks(range(len(groups)), ["\n".join(textwrap.wrap(g["label"], 14)) or g["label"]
                                       for g in groups], fontsize=8.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    tops = [_clipped(g["estimate"], limits)[1] for g in groups] + [v for g in groups for v in g.get("values", [])]
    lows = [_clipped(g["estimate"], limits)[0] for g in groups] + [v for g in groups for v in g.get("values", [])]
    span = max(tops + [0.05]) - min(lows + [0.0])
    ax.set_ylim(min(lows + [0.0]) - 0.08 * span, max(tops + [0.05]) + 0.25 * span)
    if reference is not None or any(g.get("values") for g in groups):
        ax.legend(fontsize=8, loc="upper right")
    return fig if own else ax


def sensitivity(xs: list, estimates: list[dict], per_seed: list[list[float]] | None = None, ax=None,
                *, xlabel: str = "", ylabel: str = "", title: str = "", limits=None):
    """A quantity against a setting (e.g. |D_t|): mean with its interval as a band
    (clipped to ``limits``), and the seeds as dots."""
    import numpy as np

    own = ax is None
    if own:
        fig, ax = figure(5.2, 3.6)
    m = np.array([e["mean"] for e in estimates], dtype=float)
    lo = np.array([_clipped(e, limits)[0] for e in estimates], dtype=float)
    hi = np.array([_clipped(e, limits)[1] for e in estimates], dtype=float)
    ax.fill_between(xs, lo, hi, color=PALETTE["with"], alpha=0.18, lw=0, label="95% interval")
    ax.plot(xs, m, "o-", color=PALETTE["with"], label="mean over seeds")
    for x, vals in zip(xs, per_seed or []):
        ax.scatter([x] * len(vals), vals, s=12, color="black", zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig if own else ax


def learning_curves(series: list[dict], ax=None, *, ylabel: str = "dev score of E_t",
                    title: str = "Learning curves", show_mean: bool = True,
                    chance: float | None = None):
    """Several runs' curves (``{"label", "x", "y"}``), drawn as steps, with their mean
    (``show_mean``) and, given ``chance`` (see :func:`chance_level`), the chance level."""
    import numpy as np

    own = ax is None
    if own:
        fig, ax = figure(5.6, 3.6)
    for i, s in enumerate(series):
        ax.step(s["x"], s["y"], where="post", color=SERIES[i % len(SERIES)], alpha=0.75,
                lw=1.3, label=s["label"])
    lengths = {len(s["x"]) for s in series}
    if show_mean and len(series) > 1 and len(lengths) == 1:
        mean = np.mean([s["y"] for s in series], axis=0)
        ax.step(series[0]["x"], mean, where="post", color="black", lw=2.2, label="mean")
    chance_line(ax, chance)
    ax.set_xlabel("SEO step t (E_0 = no rules)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _integer_steps(ax)
    _fit_ylim(ax)
    ax.legend(fontsize=7.5, ncol=2)
    return fig if own else ax


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def experience_evolution(experiences: list[list[str]], accepted: list[bool], *,
                         title: str = "Experience evolution"):
    """Top: the number of rules of E_0..E_T, accepted updates marked.  Bottom:
    every rule that ever was in E_t (rows, in order of first appearance) and the
    steps it was part of (filled cells): which rules survive."""
    import numpy as np

    use_style()
    rules: list[str] = []
    for e in experiences:
        for r in e:
            if r not in rules:
                rules.append(r)
    T = len(experiences)
    height = 2.2 + 0.28 * max(1, len(rules))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.5, height), sharex=True,
                                   gridspec_kw={"height_ratios": [1.3, max(1.0, 0.28 * len(rules))]})
    xs = list(range(T))
    ax1.step(xs, [len(e) for e in experiences], where="post", color=PALETTE["with"])
    acc = [t for t in range(1, T) if accepted[t - 1]]
    ax1.scatter(acc, [len(experiences[t]) for t in acc], s=70, facecolors="none",
                edgecolors=PALETTE["good"], linewidths=2, zorder=3, label="update accepted")
    ax1.set_ylabel("rules in E_t")
    ax1.set_title(title)
    ax1.set_ylim(-0.3, max([len(e) for e in experiences] + [1]) + 0.8)
    if acc:
        ax1.legend(fontsize=8, loc="upper left")
    grid = np.zeros((max(1, len(rules)), T))
    for t, e in enumerate(experiences):
        for r in e:
            grid[rules.index(r), t] = 1
    ax2.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest",
               extent=(-0.5, T - 0.5, len(grid) - 0.5, -0.5))
    ax2.set_yticks(range(max(1, len(rules))), [_short(r) for r in rules] or ["(no rule was ever accepted)"],
                   fontsize=7)
    ax2.set_xticks(xs, [f"E_{t}" for t in xs], fontsize=8)
    ax2.grid(False)
    ax2.set_xlabel("experience after step t")
    fig.tight_layout()
    return fig


def heatmap(values, row_labels: list[str], col_labels: list[str], *, annotations=None,
            outline=None, title: str = "", xlabel: str = "", ylabel: str = "",
            cbar_label: str = ""):
    """A matrix of signed values (red below 0, blue above), NaN cells grey and
    marked "n/a"; ``outline`` a boolean matrix of cells to frame."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    v = np.array(values, dtype=float)
    fig, ax = figure(1.6 + 1.45 * len(col_labels), 1.3 + 0.7 * len(row_labels))
    finite = v[np.isfinite(v)]
    lim = max(1e-9, float(np.abs(finite).max()) if finite.size else 1.0)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#e5e5e5")
    im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, norm=TwoSlopeNorm(0, -lim, lim), aspect="auto")
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            text = "n/a" if not np.isfinite(v[i, j]) else (
                annotations[i][j] if annotations is not None else f"{v[i, j]:+.2f}")
            dark = np.isfinite(v[i, j]) and abs(v[i, j]) > 0.6 * lim
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
            if outline is not None and outline[i][j]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2,
                                           edgecolor="black"))
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(cbar_label)
    return fig


def paired_bars(groups: list[dict], ax=None, *, ylabel: str = "mean score", title: str = ""):
    """Without / with the experience, side by side per group, with intervals.
    ``groups``: ``{"label", "without": est, "with": est}``."""
    own = ax is None
    if own:
        fig, ax = figure(max(4.6, 1.8 * len(groups) + 1), 3.5)
    for i, g in enumerate(groups):
        for j, key in enumerate(("without", "with")):
            x = i + (j - 0.5) * 0.36
            ax.bar(x, g[key]["mean"], width=0.34, color=PALETTE[key],
                   label=f"{key} E" if i == 0 else None)
            _interval(ax, x, g[key], limits=(0.0, 1.0))
    ax.set_xticks(range(len(groups)), [g["label"] for g in groups])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    top = max([g[k]["high"] for g in groups for k in ("with", "without")] + [0.0])
    ax.set_ylim(0, min(1.05, max(0.1, top * 1.25 + 0.02)))
    ax.legend(fontsize=8)
    return fig if own else ax


def validation_noise(results: dict, *, title: str = "The noise of v(E) on a small D_t"):
    """Left: v(E) on many fresh draws of D_t, per |D_t| and experience (one dot per
    draw; the line is the pool mean).  Right: how often the better experience
    (by its pool mean) scores higher on one draw."""
    import numpy as np

    names = results["experiences"]
    sizes = results["sizes"]
    two = len(names) > 1 and any("better wins" in r for r in results.get("summary", []))
    fig, axes = figure(10 if two else 5.6, 3.6, ncols=2 if two else 1)
    ax = axes[0] if two else axes
    width = 0.7 / max(1, len(names))
    rng = np.random.default_rng(0)
    for k, n in enumerate(names):
        color = SERIES[k % len(SERIES)]
        for i, s in enumerate(sizes):
            vals = np.array(results["scores"][str(s)][n], dtype=float)
            x = i + (k - (len(names) - 1) / 2) * width
            ax.scatter(x + rng.uniform(-width / 3, width / 3, len(vals)), vals, s=9, alpha=0.5,
                       color=color, label=n if i == 0 else None)
            ax.errorbar(x, vals.mean(), yerr=vals.std(ddof=1) if len(vals) > 1 else 0,
                        color="black", capsize=3, lw=1)
        ax.axhline(results["pool_means"][n], color=color, ls="--", lw=1)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlabel("|D_t| (examples in one validation draw)")
    ax.set_ylabel("v(E) on one draw")
    ax.set_title(title)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, loc="upper right")
    if two:
        wins = [r["better wins"] for r in results["summary"]]
        axes[1].plot(sizes, wins, "o-", color=PALETTE["accent"])
        axes[1].set_xscale("log", base=2)
        axes[1].set_xticks(sizes, [str(s) for s in sizes])
        axes[1].minorticks_off()
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_xlabel("|D_t|")
        axes[1].set_ylabel("share of draws")
        axes[1].set_title("The better experience wins on D_t")
    return fig


def label_distribution(counts: dict[str, dict[str, int]], labels: list[str], ax=None, *,
                       gold: dict[str, int] | None = None, title: str = "Which label wins"):
    """Grouped bars: how often each label is chosen under each condition
    (``counts[condition][label]``), optionally with the gold distribution."""
    own = ax is None
    if own:
        fig, ax = figure(7.0, 3.4)
    conds = list(counts) + (["gold"] if gold else [])
    width = 0.8 / len(conds)
    for k, c in enumerate(conds):
        data = gold if c == "gold" else counts[c]
        xs = [i + (k - (len(conds) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [data.get(l, 0) for l in labels], width=width * 0.95, label=c,
               color=PALETTE["without"] if c == "gold" else SERIES[k % len(SERIES)])
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig if own else ax
