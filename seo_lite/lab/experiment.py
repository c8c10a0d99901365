"""One experiment = SEO training + final evaluation + a figure, in a run directory.

This is the unit every entry point calls: ``seo-lite run``, the
parameterized notebook ``run_seo.ipynb`` and each cell of the ablation grid.
After training, the learned experience E_T is compared with no experience on
the dev and test splits (same examples, paired bootstrap CIs), and every
distinct E_t of the run is scored on dev, which gives the learning curve in
held-out terms.  Results go to ``final.json``, per-example predictions to
``eval/*.jsonl``, the figure to ``figures/summary.png``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from typing import Callable

from ..machinery.build import prepare
from ..method.config import SEOConfig
from ..machinery.files import atomic_write_text
from ..llm.base import Usage, merge_usage
from ..llm.usage import add_usage
from ..machinery.runs import RunDir, load_run
from ..method.evaluation import evaluate_run
from ..method.seo import SEORun
from ..machinery.training import train


@dataclass
class ExperimentResult:
    run: SEORun
    final: dict
    figure: Path | None

    def __str__(self) -> str:
        return format_result(self.run, self.final)


def run_experiment(config: SEOConfig, out, *, progress: bool = True, figure: bool = True,
                   task=None, splits=None, generator=None, optimizer=None,
                   on_start: Callable[[RunDir, int], None] | None = None) -> ExperimentResult:
    """Train (resuming ``out`` if it holds part of this run), evaluate, plot.
    ``on_start(run_dir, finished_steps)`` is called once the run directory is open."""
    t0 = time.perf_counter()
    task, splits, generator, optimizer = prepare(config, task=task, splits=splits,
                                                 generator=generator, optimizer=optimizer)
    start = merge_usage(generator, optimizer)
    run = train(config, task=task, splits=splits, generator=generator, optimizer=optimizer,
                run_dir=out, progress=progress, on_start=on_start)
    final = finalize(run, task, splits, generator, optimizer, out, progress=progress)
    final["invocation"] = {"seconds": round(time.perf_counter() - t0, 2),
                           "usage": Usage.diff(merge_usage(generator, optimizer), start)}
    RunDir(out).write_final(final)
    fig = None
    if figure:
        from .plots import run_summary

        fig = run_summary(out)
    return ExperimentResult(run, final, fig)


def finalize(run: SEORun, task, splits, generator, optimizer, out=None, *,
             progress: bool = True) -> dict:
    """Compare E_T with no experience on dev and test; score each E_t on dev."""
    cfg = run.config
    before = merge_usage(generator, optimizer)
    final: dict = {"experience": run.experience.to_list(), "steps": len(run.steps),
                   "accepted": run.accepted, "task": task.describe(),
                   "models": {"generator": generator.identity(), "optimizer": optimizer.identity()},
                   "comparisons": {}}
    comparisons, curve = evaluate_run(task, generator, splits, run.experiences,
                                      n_boot=cfg.bootstrap, seed=cfg.seed, progress=progress)
    for split, comp in comparisons.items():
        final["comparisons"][split] = comp.to_dict()
        if out is not None:
            _write_predictions(Path(out) / "eval" / f"{split}.jsonl", comp)
    if splits.dev:
        final["curve"] = curve
    final["usage"] = {"steps": add_usage(s.usage for s in run.steps),
                      "evaluation": Usage.diff(merge_usage(generator, optimizer), before)}
    return final


def _write_predictions(path: Path, comp) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for w, wo in zip(comp.with_experience.predictions, comp.without_experience.predictions):
        rows.append(json.dumps({"example_id": w.example_id, "with": w.to_dict(),
                                "without": wo.to_dict()}, ensure_ascii=False))
    atomic_write_text(path, "\n".join(rows) + "\n")


def total_calls(final: dict) -> tuple[int, int]:
    """(model calls, cache hits) over training and evaluation."""
    usage = final.get("usage", {})
    roles = add_usage(usage.get(part, {}) for part in ("steps", "evaluation")).values()
    return sum(u.get("calls", 0) for u in roles), sum(u.get("cache_hits", 0) for u in roles)


def format_result(run: SEORun, final: dict) -> str:
    cfg = run.config
    models = final.get("models", {})
    gen = models.get("generator", {}).get("model", cfg.generator)
    opt = models.get("optimizer", {}).get("model", cfg.optimizer)
    calls, hits = total_calls(final)
    inv = final.get("invocation", {})
    lines = [f"SEO on {cfg.task} ({final['task']['answer_mode']} mode): generator {gen}, optimizer {opt}",
             f"{final['steps']} steps, {final['accepted']} updates accepted; "
             f"{calls} model calls, {hits} answered from the cache"
             + (f"; this invocation {inv['seconds']:.0f} s" if inv else ""),
             "", "Learned experience:",
             run.experience.render() if run.experience else "  (no rules: no candidate beat the empty experience)",
             "", f"{'split':<6}{'n':>5}   {'without E':<22}{'with E':<22}{'difference (paired)':<22}"]
    for split, comp in final.get("comparisons", {}).items():
        w, wo, d = comp["with"]["score"], comp["without"]["score"], comp["paired"]["diff"]
        fmt = lambda e, sign="": f"{e['mean']:{sign}.3f} [{e['low']:{sign}.3f}, {e['high']:{sign}.3f}]"
        lines.append(f"{split:<6}{w['n']:>5}   {fmt(wo):<22}{fmt(w):<22}{fmt(d, '+'):<22}")
    lines.append("(mean per-example score from 0 to 1, 95% bootstrap intervals)")
    for split, comp in final.get("comparisons", {}).items():
        # the task's corpus metrics are on a 0-100 scale; "score" is the table's number
        m_w, m_wo = comp["with"]["metrics"], comp["without"]["metrics"]
        shown = [k for k in m_w if k != "score" and isinstance(m_w[k], (int, float))]
        if shown:
            lines.append(f"{split} metrics, 0-100 scale (without E -> with E): " + ", ".join(
                f"{k} {m_wo[k]:.1f} -> {m_w[k]:.1f}" for k in shown))
    return "\n".join(lines)


def report(run_dir) -> str:
    run, final = load_run(run_dir)
    text = run.summary()
    if final:
        text += "\n\n" + format_result(run, final)
    else:
        text += "\n\n(no final.json yet: the run has not finished its evaluation)"
    return text

