"""Drawing: every figure of the project, in one style and one palette.

This module draws: a figure function takes numbers, a run or a step record
already in memory (:mod:`seo_lite.lab.results` reads them from run
directories; the few functions here that accept a run directory read it
through that module) and returns a matplotlib figure, or draws into ``ax``.
Every colour comes from :data:`COLOURS`, one mapping of condition -> colour,
so "SEO", "no experience", "fixed D" or "|D_t|=4" look the same in every
panel and figure.  Each figure names the models that made it in a footnote.
"""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import matplotlib

if "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # scripts and the CLI write files; notebooks show inline

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import results  # noqa: E402  (reads files; this module only draws what it returns)
from ..method.stats import across_seeds  # noqa: E402

#: The one palette: condition (or role in a figure) -> colour.
COLOURS = {
    "no experience": "#9aa5b1", "SEO": "#1b6ca8", "reference": "#5e3c99", "rule bank": "#17becf",
    "fixed D": "#b07aa1", "no validation": "#d1495b", "no comparison trials": "#ff9da7",
    "weaker optimizer": "#8c564b",
    "contextual calibration": "#f2c14e", "SEO + contextual calibration": "#b8860b",
    "batch calibration": "#f4a261", "SEO + batch calibration": "#c0582b",
    **{f"|D_t|={n}": c for n, c in zip((2, 4, 8, 16, 32, 64), ("#e0dc8a", "#c9c33a", "#a5a020",
                                                                 "#7f7b12", "#5a570a", "#3b3906"))},
    # roles inside a figure
    "chance": "#555555", "accepted": "#2e933c", "candidate": "#4a4e69", "failed": "#8b1e3f",
    "duplicate": "#bbbbbb", "gold": "#333333",
}
ALIASES = {"without E": "no experience", "no rules": "no experience", "none": "no experience",
           "with E": "SEO", "llm": "SEO", "rulebank": "rule bank"}
#: Colours for names that are not conditions (runs, seeds, a notebook's own settings).
OTHERS = ["#4c9f70", "#e07a5f", "#3d405b", "#81b29a", "#6d597a", "#b56576", "#355070"]


def colours(names: list[str]) -> list[str]:
    """Each name's colour: a condition's own (:data:`COLOURS`), any other name
    (a run, a seed) the next of OTHERS, so that no two share one."""
    others = iter(OTHERS * (1 + len(names) // len(OTHERS)))
    return [COLOURS.get(ALIASES.get(n, n)) or next(others) for n in names]


def colour(name: str) -> str:
    return colours([name])[0]


def use_style() -> None:
    """The one style of the project's figures."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False,
        "axes.prop_cycle": matplotlib.cycler(color=OTHERS),
    })


def figure(width: float = 6.0, height: float = 3.6, ncols: int = 1):
    use_style()
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, (axes[0, 0] if ncols == 1 else list(axes[0]))


def footnote(fig, text: str):
    """Lay the figure out and put small grey text under it, wrapped to its width (a
    long line would widen the saved canvas and leave half of it empty); returns ``fig``."""
    fig.tight_layout()
    chars = max(40, int(fig.get_size_inches()[0] * 16))
    lines = [w for line in text.split("\n") for w in (textwrap.wrap(line, chars) or [""])]
    fig.text(0.01, -0.02, "\n".join(lines), fontsize=7.5, color="#555555", ha="left", va="top")
    return fig


def save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# -- footnotes: which models made a figure ----------------------------------------------------------
def model_label(spec: str, options: dict | None = None, identity: dict | None = None) -> str:
    """``embedded (SmolLM2-135M-Instruct, load_in_4bit=True)``: a model spec, what it
    resolved to, and its options (secret-looking options are never shown)."""
    from ..method.config import is_secret_name

    name = (identity or {}).get("model")
    bits = [str(name)] if name and name != spec else []
    bits += [f"{k}={v}" for k, v in sorted((options or {}).items()) if not is_secret_name(k)]
    return spec + (f" ({', '.join(bits)})" if bits else "")


def models_note_many(entries) -> str:
    """Footnote naming every task, generator, optimizer and seed behind a figure.
    ``entries``: (config or run or a config dict, final or result dict or None) pairs."""
    seen: dict[str, list] = {"task": [], "gen": [], "opt": [], "seed": []}
    for config, final in entries:
        config = getattr(config, "config", config)                  # a run or its config
        get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k, None))
        model = lambda role: model_label(get(role) or "?", get(f"{role}_options"),
                                         (final or {}).get("models", {}).get(role))
        for key, v in (("task", get("task")), ("seed", get("seed")), ("gen", model("generator")),
                       ("opt", model("optimizer"))):
            if v is not None and v not in seen[key]:
                seen[key].append(v)
    seeds = f" | seeds {', '.join(map(str, sorted(seen['seed'])))}" if seen["seed"] else ""
    return (f"{', '.join(seen['task'])} | generator {'; '.join(seen['gen'])} | "
            f"optimizer {'; '.join(seen['opt'])}{seeds}")


# -- pieces every figure uses --------------------------------------------------------------------------
def chance_line(ax, chance: float | None, label: str = "chance") -> None:
    """A dashed horizontal line at the chance level (nothing when ``chance`` is None)."""
    if chance is not None:
        ax.axhline(chance, color=COLOURS["chance"], ls="--", lw=1.1, zorder=1,
                   label=f"{label} (1/{round(1 / chance)})" if chance > 0 else label)


def interval(ax, x, est: dict, limits=(0.0, 1.0), color="black"):
    """An error bar for an estimate, clipped to the values it can take (a score:
    [0, 1]; a difference of scores: [-1, 1])."""
    lo, hi = clipped(est, limits)
    ax.errorbar(x, est["mean"], yerr=[[max(est["mean"] - lo, 0)], [max(hi - est["mean"], 0)]],
                color=color, capsize=3, lw=1)


def clipped(est: dict, limits=(0.0, 1.0)) -> tuple[float, float]:
    return max(est["low"], limits[0]), min(est["high"], limits[1])


def _fit_ylim(ax) -> None:
    """Scores live in [0, 1]; zoom to the data but keep 0 in view."""
    ys = [np.asarray(l.get_ydata(), dtype=float) for l in ax.get_lines()]
    top = max((float(np.nanmax(y)) for y in ys if np.isfinite(y).any()), default=1.0)
    ax.set_ylim(-0.02, min(1.02, max(0.2, top * 1.25 + 0.05)))


def _log2_axis(ax, xs) -> None:
    """|D_t| doubles from one setting to the next: a log2 axis ticked at the settings."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs], minor=False)
    ax.minorticks_off()


def _integer_steps(ax) -> None:
    """SEO steps are whole numbers: no tick at 0.5 or 1.5."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _own(ax, width, height):
    return (*figure(width, height), True) if ax is None else (ax.figure, ax, False)


# -- one run ---------------------------------------------------------------------------------------------
def learning_curve(run, ax=None, label: str | None = None, final: dict | None = None,
                   chance: float | None | bool = True):
    """v(E_t) on each step's D_t, the best candidate's score, and accepted updates;
    with ``final.json`` also the dev score of each E_t.  ``run``: an SEORun or a
    run directory (read by results.py).  ``chance``: True draws the chance level
    when the task has labels, a number draws that level, None/False none."""
    if isinstance(run, (str, os.PathLike)):
        run, fin = results.load_run(run)
        final = final or fin
    fig, ax, own = _own(ax, 6.0, 3.6)
    steps = [s.step + 1 for s in run.steps]
    if any(s.decision.current_score is not None for s in run.steps):
        ax.plot(steps, [s.decision.current_score for s in run.steps], "o-", color=COLOURS["SEO"],
                alpha=0.6, label=label or "E_t on D_t")
        ax.plot(steps, [s.decision.best_score if s.decision.best_score is not None else np.nan
                        for s in run.steps], "x", color=COLOURS["candidate"], label="best candidate on D_t")
    acc = [(s.step + 1, s.decision.best_score) for s in run.steps if s.decision.accepted]
    if acc and acc[0][1] is not None:
        ax.scatter(*zip(*acc), s=110, facecolors="none", edgecolors=COLOURS["accepted"], linewidths=2,
                   label="update accepted", zorder=3)
    if final and final.get("curve"):
        ax.step([c["step"] for c in final["curve"]], [c["dev"] for c in final["curve"]], where="post",
                color=COLOURS["SEO"], lw=2, label="E_t on dev")
    chance_line(ax, results.chance_level(final) if chance is True else (chance or None))
    ax.set(xlabel="SEO step t", ylabel="mean score", title="Learning curve")
    _integer_steps(ax)
    _fit_ylim(ax)
    ax.legend(fontsize=8, loc="best")
    if own:
        footnote(fig, models_note_many([(run.config, final)]))
    return fig if own else ax


def before_after(final: dict, config, ax=None, chance: float | None | bool = True):
    """Dev/test score without and with the learned experience, with 95% CIs
    (clipped to [0, 1]); ``chance`` as in :func:`learning_curve`."""
    fig, ax, own = _own(ax, 4.6, 3.4)
    comps = final.get("comparisons", {})
    paired_bars([{"label": f"{s} (n={comps[s]['with']['score']['n']})", "without": comps[s]["without"]["score"],
                  "with": comps[s]["with"]["score"]} for s in ("dev", "test") if s in comps],
                ax=ax, title="Before / after SEO", chance=results.chance_level(final) if chance is True else chance)
    if own:
        footnote(fig, models_note_many([(config, final)]))
    return fig if own else ax


def run_summary(run_dir: str | os.PathLike) -> Path:
    """The quick-start figure of one run (learning curve + before/after), read
    by results.py and saved as ``<run_dir>/figures/summary.png``."""
    run, final = results.load_run(run_dir)
    fig, axes = figure(10, 3.6, ncols=2 if final else 1)
    axes = axes if isinstance(axes, list) else [axes]
    learning_curve(run, ax=axes[0], final=final)
    if final:
        before_after(final, run.config, ax=axes[1])
    footnote(fig, models_note_many([(run.config, final)]))
    return save(fig, Path(run_dir) / "figures" / "summary.png")


# -- bars, bands, curves ------------------------------------------------------------------------------
def ablation_bars(groups: list[dict], ax=None, *, ylabel: str = "test score", title: str = "Ablations",
                  reference: float | None = None, limits=(0.0, 1.0), chance: float | None = None):
    """One bar per setting in its condition's colour: the mean over seeds with its
    95% interval (clipped to ``limits``), and a dot per seed.  ``groups``:
    ``{"label", "condition", "estimate": {mean, low, high, n}, "values": [...]}``."""
    fig, ax, own = _own(ax, max(5.0, 1.1 * len(groups) + 1.5), 3.8)
    for i, g in enumerate(groups):
        ax.bar(i, g["estimate"]["mean"], width=0.6, alpha=0.9, color=colour(g.get("condition", g["label"])))
        interval(ax, i, g["estimate"], limits)
        vals = g.get("values", [])
        ax.scatter([i + (j - (len(vals) - 1) / 2) * 0.08 for j in range(len(vals))], vals, s=14,
                   color="black", zorder=3, label="one seed" if i == 0 and vals else None)
    if reference is not None:
        ax.axhline(reference, color=COLOURS["no experience"], ls=":", lw=1.6, label="without experience")
    chance_line(ax, chance)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(groups)), ["\n".join(textwrap.wrap(g["label"], 14)) for g in groups], fontsize=8.5)
    ax.set(ylabel=ylabel, title=title)
    seen = [v for g in groups for v in (*clipped(g["estimate"], limits), *g.get("values", []))]
    lo, hi = min(seen + [0.0]), max(seen + [0.05, chance or 0.0])
    ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.25 * (hi - lo))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    return fig if own else ax


def paired_bars(groups: list[dict], ax=None, *, ylabel: str = "mean score", title: str = "",
                chance: float | None = None):
    """Without / with the experience side by side per group, intervals clipped to
    [0, 1].  ``groups``: ``{"label", "without": est, "with": est}``."""
    fig, ax, own = _own(ax, max(4.6, 1.8 * len(groups) + 1), 3.5)
    for i, g in enumerate(groups):
        for j, (key, cond) in enumerate((("without", "no experience"), ("with", "SEO"))):
            x = i + (j - 0.5) * 0.36
            ax.bar(x, g[key]["mean"], width=0.34, color=colour(cond),
                   label=f"{key} E" if i == 0 else None)
            interval(ax, x, g[key])
    chance_line(ax, chance)
    ax.set_xticks(range(len(groups)), [g["label"] for g in groups])
    ax.set(ylabel=ylabel, title=title)
    top = max([clipped(g[k])[1] for g in groups for k in ("with", "without")] + [chance or 0.0])
    ax.set_ylim(0, min(1.05, max(0.1, top * 1.25 + 0.02)))
    ax.legend(fontsize=8)
    return fig if own else ax


def learning_curves(series: list[dict], ax=None, *, ylabel: str = "dev score of E_t",
                    title: str = "Learning curves", show_mean: bool = True,
                    chance: float | None = None, steps: bool = True):
    """Several runs' curves (``{"label", "x", "y"[, "condition"]}``), each in its
    condition's colour, drawn as steps (or points), with their mean (``show_mean``)
    and the chance level."""
    fig, ax, own = _own(ax, 5.6, 3.6)
    for s, c in zip(series, colours([s.get("condition", s["label"]) for s in series])):
        if steps:
            ax.step(s["x"], s["y"], where="post", color=c, alpha=0.8, lw=1.4, label=s["label"])
        else:
            ax.plot(s["x"], s["y"], "o-", color=c, alpha=0.8, ms=4, label=s["label"])
    if show_mean and len(series) > 1 and len({len(s["x"]) for s in series}) == 1:
        ax.step(series[0]["x"], np.mean([s["y"] for s in series], axis=0), where="post", color="black",
                lw=2.2, label="mean")
    chance_line(ax, chance)
    ax.set(xlabel="SEO step t (E_0 = no rules)" if steps else "SEO step t", ylabel=ylabel, title=title)
    _integer_steps(ax)
    ax.set_ylim(-0.03, 1.03) if not steps else _fit_ylim(ax)
    ax.legend(fontsize=7.5, ncol=2)
    return fig if own else ax


# -- the experience over a run ---------------------------------------------------------------------------
def distinct_labels(texts: list[str], n: int = 70) -> list[str]:
    """One short label per text, different wherever the texts differ: a text that
    shares its first ``n`` characters with another shows its start, "…", and the
    part where it parts from the text nearest to it."""
    flat = [" ".join(str(t).split()) for t in texts]
    common = lambda a, b: next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    out = []
    for t in flat:
        d = max((common(t, u) for u in flat if u != t), default=0)
        out.append(t if len(t) <= n else t[:n - 1] + "\u2026" if d < n - 12 else
                   t[:20] + " \u2026 " + t[d - 8:d + n - 32] + ("\u2026" if d + n - 32 < len(t) else ""))
    # texts equal but for spaces: numbered
    return [f"{x} (#{out[:i + 1].count(x)})" if out.count(x) > 1 else x for i, x in enumerate(out)]


def experience_evolution(experiences: list[list[str]], accepted: list[bool], *,
                         title: str = "Experience evolution"):
    """Top: the number of rules of E_0..E_T, accepted updates marked.  Bottom:
    every rule that ever was in E_t (rows, in order of first appearance) and the
    steps it was part of (filled cells): which rules survive."""
    use_style()
    rules = list(dict.fromkeys(r for e in experiences for r in e))
    T, R = len(experiences), max(1, len(rules))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.5, 2.2 + 0.28 * R), sharex=True,
                                   gridspec_kw={"height_ratios": [1.3, max(1.0, 0.28 * R)]})
    ax1.step(range(T), [len(e) for e in experiences], where="post", color=COLOURS["SEO"])
    acc = [t for t in range(1, T) if accepted[t - 1]]
    ax1.scatter(acc, [len(experiences[t]) for t in acc], s=70, facecolors="none",
                edgecolors=COLOURS["accepted"], linewidths=2, zorder=3, label="update accepted")
    ax1.set(ylabel="rules in E_t", title=title, ylim=(-0.3, max([len(e) for e in experiences] + [1]) + 0.8))
    if acc:
        ax1.legend(fontsize=8, loc="upper left")
    grid = np.array([[r in e for e in experiences] for r in rules] or [[0] * T], dtype=float)
    ax2.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest",
               extent=(-0.5, T - 0.5, R - 0.5, -0.5))
    ax2.set_yticks(range(R), distinct_labels(rules) or ["(no rule was ever accepted)"], fontsize=7)
    ax2.set_xticks(range(T), [f"E_{t}" for t in range(T)], fontsize=8)
    ax2.grid(False)
    ax2.set_xlabel("experience after step t")
    fig.tight_layout()
    return fig


def validation_noise(study: dict, *, title: str = "The noise of v(E) on a small D_t"):
    """Left: v(E) on many fresh draws of D_t, per |D_t| and experience (one dot per
    draw; bar: mean ± 1 sd across draws, clipped to [0, 1]; dashed: the pool mean);
    the chance level.  Right: how often the better experience (by its pool mean)
    scores higher on one draw.  ``study``: :func:`seo_lite.lab.results.noise`."""
    names, sizes = study["experiences"], study["sizes"]
    two = len(names) > 1 and any("better wins" in r for r in study.get("summary", []))
    fig, axes = figure(10 if two else 5.6, 3.6, ncols=2 if two else 1)
    ax = axes[0] if two else axes
    width = 0.7 / max(1, len(names))
    rng = np.random.default_rng(0)
    for k, (n, c) in enumerate(zip(names, colours(names))):
        for i, s in enumerate(sizes):
            vals = np.array(study["scores"][str(s)][n], dtype=float)
            x = i + (k - (len(names) - 1) / 2) * width
            ax.scatter(x + rng.uniform(-width / 3, width / 3, len(vals)), vals, s=9, alpha=0.5,
                       color=c, label=n if i == 0 else None)
            sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
            interval(ax, x, {"mean": vals.mean(), "low": vals.mean() - sd, "high": vals.mean() + sd})
        ax.axhline(study["pool_means"][n], color=c, ls="--", lw=1)
    chance_line(ax, study.get("chance"))
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set(xlabel="|D_t| (examples in one validation draw)", ylabel="v(E) on one draw", title=title,
           ylim=(-0.05, 1.05))
    ax.legend(fontsize=8, loc="upper right")
    if two:
        axes[1].plot(sizes, [r["better wins"] for r in study["summary"]], "o-", color=COLOURS["accepted"])
        _log2_axis(axes[1], sizes)
        axes[1].set(ylim=(-0.02, 1.02), xlabel="|D_t|", ylabel="share of draws",
                    title="The better experience wins on D_t")
    return footnote(fig, f"{study.get('task', '')} | {study.get('models', '')} | {study['draws']} draws "
                  f"per size from {study['pool']} training examples; dashed: mean over all of them")


def label_distribution(counts: dict[str, dict[str, int]], labels: list[str], ax=None, *,
                       gold: dict[str, int] | None = None, title: str = "Which label wins"):
    """Grouped bars: how often each label is chosen under each condition
    (``counts[condition][label]``), optionally with the gold distribution."""
    fig, ax, own = _own(ax, 7.0, 3.4)
    conds = list(counts) + (["gold"] if gold else [])
    width = 0.8 / len(conds)
    for k, (c, col) in enumerate(zip(conds, colours(conds))):
        data = gold if c == "gold" else counts[c]
        ax.bar([i + (k - (len(conds) - 1) / 2) * width for i in range(len(labels))],
               [data.get(l, 0) for l in labels], width=width * 0.95, label=c, color=col)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set(ylabel="examples", title=title)
    ax.legend(fontsize=8)
    return fig if own else ax


# -- figures across runs, from the numbers results.py reads ---------------------------------------------
def ablations(data: dict):
    """Test score with E_T (chance and no experience marked) and the paired gain, per setting."""
    fig, (ax1, ax2) = figure(max(9.0, 2.2 * len(data["with"]) + 2), 4.0, ncols=2)
    ablation_bars(data["with"], ax=ax1, ylabel="test score with E_T", chance=data["chance"],
                  title="Test score with the learned experience", reference=data["reference"])
    ablation_bars(data["diff"], ax=ax2, ylabel="with E_T - without (paired)", limits=(-1.0, 1.0),
                  title="Gain over no experience")
    return footnote(fig, models_note_many(data["runs"]) + f"\nbars: mean over seeds; error bars: "
             f"{results.interval_note(data['n_seeds'])}; dots: single seeds; {data['steps']} steps per run, "
             f"n(test) = {data['n_test']} per seed")


def val_size(data: dict):
    """The paired test gain and the accepted updates against |D_t|: the mean over
    seeds (each point in its condition's colour), its interval as a band (clipped),
    the seeds as dots."""
    fig, axes = figure(10, 3.7, ncols=2)
    xs, steps = data["sizes"], data["steps"]
    for ax, est, seeds, limits, ylabel, title in (
            (axes[0], data["gain"], data["gains"], (-1.0, 1.0), "test gain with E_T (paired)", "Gain against |D_t|"),
            (axes[1], data["accept"], data["accepted"], (0, steps), "updates accepted",
             f"Accepted updates (of {steps} steps)")):
        ax.fill_between(xs, *zip(*[clipped(e, limits) for e in est]), color=COLOURS["SEO"], alpha=0.15, lw=0,
                        label="95% interval")
        ax.plot(xs, [e["mean"] for e in est], "-", color=COLOURS["SEO"], label="mean over seeds")
        ax.scatter(xs, [e["mean"] for e in est], s=60, zorder=3, color=[colour(c) for c in data["conditions"]])
        ax.scatter([x for x, v in zip(xs, seeds) for _ in v], [y for v in seeds for y in v], s=12,
                   color="black", zorder=4)
        _log2_axis(ax, xs)
        ax.set(xlabel="|D_t|", ylabel=ylabel, title=title)
        ax.legend(fontsize=8)
    axes[0].axhline(0, color="black", lw=0.6)
    return footnote(fig, models_note_many(data["runs"]) + f"\nleft: {results.interval_note(data['n_seeds'])}; right: 95% "
             "t-interval across seeds (clipped); validation costs (1 + candidates) x |D_t| generator "
             "calls per step")


def calibration(data: dict):
    """Test score under no experience / SEO / calibration / both, and what each adds to the other."""
    fig, (ax1, ax2) = figure(14.0, 4.4, ncols=2)
    for ax, key, ylabel, title, limits in (
            (ax1, "scores", "test score", "Test score", (0.0, 1.0)),
            (ax2, "contrasts", "difference in test score", "What one adds to the other", (-1.0, 1.0))):
        groups = [{"label": name, "values": vals, "estimate": across_seeds(vals).to_dict(),
                   "condition": name.split(" vs ")[0].split(" added to ")[0].removesuffix(" alone")}
                  for name, vals in data[key].items()]       # "A alone", "A vs B", "A added to B": A's colour
        ablation_bars(groups, ax=ax, ylabel=ylabel, title=title, limits=limits,
                      chance=data["chance"] if key == "scores" else None)
    return footnote(fig, models_note_many(data["runs"]) + f"\nbars: mean over seeds {data['seeds']}; error bars: "
             f"95% t-interval across {len(data['seeds'])} seeds; dots: single seeds; a difference has "
             "the colour of what it adds; right: differences of the left bars, seed by seed, on the same "
             "test examples")


def curves(data: dict, title: str = "Learning curves"):
    """Dev score of E_t and v(E_t) on each step's D_t, one line per run or setting."""
    fig, (ax1, ax2) = figure(11, 3.9, ncols=2)
    learning_curves(data["dev"], ax=ax1, title=f"{title}: dev score of E_t", chance=data["chance"],
                    show_mean=not data["average"] and data["one_task"])   # no mean across tasks
    if data["val"]:
        learning_curves(data["val"], ax=ax2, ylabel="v(E_t) on that step's D_t", steps=False,
                        title="Validation score of E_t (a new D_t each step)", chance=data["chance"],
                        show_mean=False)
    else:
        ax2.set_axis_off()
    return footnote(fig, models_note_many(data["runs"]))


def _study_note(rows: list[dict], what: str, n_label: str = "examples") -> str:
    """Models, what a bar or cell is, and its interval, for generalization results."""
    seeds = rows[0].get("seeds")
    return (models_note_many([({**r.get("config", {}), "seed": None}, r) for r in rows]) + f"\n{what}; "
            + (f"bars and cells: mean over seeds {seeds} (each seed learned its own E_T); 95% t-intervals "
               f"across the {len(seeds)} seeds" if seeds else f"95% paired bootstrap intervals over the {n_label}"))


def ood(rows: list[dict]):
    """In-domain test and out-of-distribution scores, without and with E_T."""
    fig, axes = figure(5.0 * len(rows), 3.8, ncols=len(rows))
    for ax, res in zip(axes if isinstance(axes, list) else [axes], rows):
        entries = [(f"{res['train_task']}\n(in domain", res["in_domain"])] if res.get("in_domain") else []
        entries += [(f"{task}\n(OOD", r) for task, r in res["results"].items()]
        paired_bars([{"label": f"{lab}, n={r['n']})\ndiff {r['diff']['mean']:+.3f} "
                               f"[{r['diff']['low']:+.3f}, {r['diff']['high']:+.3f}]",
                      "with": r["with"], "without": r["without"]} for lab, r in entries],
                    ax=ax, title=f"{res['pair']}: E_T learned on {res['train_task']}")
    return footnote(fig, _study_note(rows, "mean per-example score (QA: token F1, translation: chrF/100)"))


def transfer(matrix: dict, rows: list[dict], row_labels: list[str]):
    """The transfer matrix across translation directions: paired chrF gain in points,
    red below 0 and blue above, n/a cells grey, the learned direction framed.
    ``matrix``: :func:`seo_lite.lab.generalization.transfer_matrix` of ``rows``."""
    from matplotlib.colors import TwoSlopeNorm

    cells = [[matrix["cells"].get((r, c)) for c in matrix["cols"]] for r in matrix["rows"]]
    v = np.array([[100 * x["mean"] if x else np.nan for x in row] for row in cells])
    fig, ax = figure(1.6 + 1.45 * len(matrix["cols"]), 1.3 + 0.7 * len(cells))
    lim = max(1e-9, float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 1.0)
    im = ax.imshow(np.ma.masked_invalid(v), norm=TwoSlopeNorm(0, -lim, lim), aspect="auto",
                   cmap=matplotlib.colormaps["RdBu"].with_extremes(bad="#e5e5e5"))
    for (i, j), x in np.ndenumerate(v):
        c = cells[i][j]
        ax.text(j, i, f"{x:+.1f}\n[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]" if c else "n/a",
                ha="center", va="center", fontsize=8, color="white" if abs(x) > 0.6 * lim else "black")
        if c and c["in_domain"]:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, edgecolor="black"))
    ax.set_xticks(range(len(matrix["cols"])), matrix["cols"])
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.grid(False)
    ax.set(xlabel="used on the direction between English and this language",
           title="Transfer across translation directions")
    fig.colorbar(im, ax=ax, shrink=0.85).set_label("chrF gain with E_T (points)")
    n = ", ".join(map(str, sorted({c["n"] for c in matrix["cells"].values()})))
    return footnote(fig, _study_note(rows, f"cells: paired chrF difference (with E_T - without), n = {n} "
                                     "sentences per seed; framed: the direction the experience was learned "
                                     "on (its test split)", "sentences"))


# -- one SEO step as a diagram ---------------------------------------------------------------------------
def step_diagram(record, ax=None, *, config=None):
    """One SEO step drawn from its record (a StepRecord, or a ``steps.jsonl`` dict):
    the trials on B_t (with and without E_t, δ per example) -> the k candidates
    per example (parse failures and duplicates marked) -> v(E) on D_t (one cell
    per example of D_t, for E_t and each new candidate) -> the selection.
    ``config`` (optional) names the models in the footnote."""
    from ..machinery.runs import record_from_dict

    record = record_from_dict(record) if isinstance(record, dict) else record
    cands, dec, n_d = record.candidates, record.decision, len(record.validation_ids)
    rows = len(cands) + 1                                   # row 0: E_t
    fig, ax, own = _own(ax, 13.5, 1.4 + 0.75 * rows)
    ax.set_axis_off()
    ax.set(xlim=(0, 3.75), ylim=(rows - 0.4, -1.4))
    y_of = {c.id: i + 1 for i, c in enumerate(cands)}
    mid = (rows - 1) / 2 + 0.5

    def box(x, y, text, c):
        ax.text(x, y, text, va="center", ha="left", fontsize=7.5,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec=c, lw=1.3))

    def arrow(x0, y0, x1, y1, c="#888888"):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color=c, lw=1))

    for x, head in ((0.0, f"1-2. trials on B_t ({len(record.trials)} examples)\nδ = score with E_t - without"),
                    (0.72, f"3. candidates ({len(cands) // max(1, len(record.trials))} per example)"),
                    (2.0, f"4. v(E) on D_t ({n_d} examples: one cell each)"), (3.1, "5. selection")):
        ax.text(x, -1.05, head, fontsize=9, weight="bold", va="center")
    box(0.0, 0, f"E_t: {len(record.experience_before)} rule(s), scored on D_t too", COLOURS["SEO"])
    arrow(1.0, 0, 1.97, 0)
    for tr in record.trials:
        ys = [y_of[c.id] for c in cands if c.example_id == tr["example_id"]] or [1]
        y, w, wo = sum(ys) / len(ys), tr["with"], tr.get("without")
        text = f"{tr['example_id']}\nwith E_t: {_short(w['answer'] or w['text'], 18)} ({w['score']:.2f})"
        text += (f"\nwithout: {_short(wo['answer'] or wo['text'], 18)} ({wo['score']:.2f})\n"
                 f"δ = {tr['effect']:+.2f}") if wo else "\n(no comparison trial)"
        box(0.0, y, text, COLOURS["SEO"])
        for yc in ys:
            arrow(0.5, y, 0.71, yc)
    cell = 0.75 / max(1, n_d)
    for c in cands:
        y = y_of[c.id]
        if not c.valid:
            state, col, v = f"parse failure: {_short(c.failure or '', 60)}", COLOURS["failed"], "nothing to score"
        elif c.duplicate_of:
            state, col = f"same rules as {c.duplicate_of}", COLOURS["duplicate"]
            v = f"not scored again: v = v({c.duplicate_of})"
        else:
            state, col, v = (f"{len(c.experience)} rule(s): {_short(c.experience.rules[0], 56)}",
                             COLOURS["candidate"], None)
            arrow(1.8, y, 1.97, y)
        box(0.72, y, f"{c.id} (from {c.example_id}, sample {c.sample_index})\n{state}", col)
        if v:
            ax.text(2.0, y, v, fontsize=7.5, va="center", color="#555555")
    for y, name, scores in [(0, "E_t", record.current_scores)] + [
            (y_of[c.id], c.id, c.val_scores) for c in cands if c.valid and not c.duplicate_of]:
        if not scores:
            ax.text(2.0, y, "not validated (validation off)", fontsize=7.5, va="center", color="#555555")
        for j, sc in enumerate(scores or []):
            ax.add_patch(plt.Rectangle((2.0 + j * cell, y - 0.3), cell * 0.9, 0.6, lw=0.5, ec="#999999",
                                       fc=matplotlib.colormaps["Blues"](0.1 + 0.8 * sc)))
        chosen = name == (dec.chosen or "E_t")
        ax.text(2.78, y, f"v = {sum(scores) / len(scores):.2f}" if scores else "", fontsize=8, va="center",
                weight="bold" if chosen else "normal")
        if chosen:
            arrow(2.97, y, 3.08, mid, COLOURS["accepted"])
    verdict = f"accepted {dec.chosen}: E_t+1 = {dec.chosen}" if dec.accepted else "E_t kept: E_t+1 = E_t"
    box(3.1, mid, "\n".join([verdict, *textwrap.wrap(dec.reason, 32),
                             f"E_t+1: {len(record.experience_after)} rule(s)"]),
        COLOURS["accepted"] if dec.accepted else COLOURS["no experience"])
    ax.set_title(f"One SEO step (step {record.step}): trials → candidates → D_t → selection",
                 fontsize=11, loc="left")
    if own:
        footnote(fig, (models_note_many([(config, None)]) + "\n" if config else "") + "cells: per-example "
                 "score on D_t (light 0, dark blue 1); duplicates share their twin's score; ties keep E_t")
    return fig if own else ax


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"
