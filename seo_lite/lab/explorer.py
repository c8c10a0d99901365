"""Step through a run: what SEO saw, proposed, measured and decided at each step.

One step t of a run directory holds everything the paper's loop did:

    E_t  ->  trials (Y_E, Y, delta per example)  ->  k candidates per example
         ->  v(E) on D_t for E_t and every candidate  ->  decision  ->  E_{t+1}

:func:`explore` shows one step at a time: in JupyterLab as an ipywidgets
step slider, elsewhere as printed text; both print :func:`render_text` of
:func:`step_view`, a plain dictionary, so the rendering is tested without a
browser.  Optimizer replies are untrusted text: they are shown as plain text,
never as HTML.
"""
from __future__ import annotations

import os
from typing import Any

from ..method.seo import SEORun, StepRecord


# -- the data of one step --------------------------------------------------------------------
def as_run(run_or_dir) -> SEORun:
    """An SEORun from a run directory, an SEORun, or an ExperimentResult."""
    if isinstance(run_or_dir, (str, os.PathLike)):
        from ..machinery.runs import load_run

        return load_run(run_or_dir)[0]
    if hasattr(run_or_dir, "run") and isinstance(run_or_dir.run, SEORun):
        return run_or_dir.run
    if isinstance(run_or_dir, SEORun):
        return run_or_dir
    raise TypeError(f"explore() takes a run directory, an SEORun or an ExperimentResult, "
                    f"got {type(run_or_dir).__name__}")


def example_texts(run: SEORun) -> dict[str, Any]:
    """id -> Example for the run's training split, read from the local data
    (an empty mapping when the data is not at hand; the explorer then shows ids)."""
    cfg = run.config
    if cfg.data_source != "local":
        return {}
    try:
        from ..machinery.data import load_splits

        splits = load_splits(cfg.task, train=cfg.train_size, dev=0, test=0, seed=cfg.seed,
                             source="local")
    except Exception:                       # no data folder here: ids only
        return {}
    return {ex.id: ex for ex in splits.train}


def step_view(run: SEORun, t: int, examples: dict | None = None) -> dict:
    """Everything about step ``t`` (0-based) as plain data."""
    if not run.steps:
        raise ValueError("the run has no finished step yet")
    if not 0 <= t < len(run.steps):
        raise IndexError(f"step {t} out of range: the run has steps 0..{len(run.steps) - 1}")
    rec: StepRecord = run.steps[t]
    examples = examples or {}
    trials = []
    for tr in rec.trials:
        ex = examples.get(tr["example_id"])
        trials.append({"example_id": tr["example_id"],
                       "input": ex.input if ex is not None else None,
                       "gold": ex.gold if ex is not None else None,
                       "with": tr.get("with"), "without": tr.get("without"),   # as logged
                       "effect": tr.get("effect")})
    cands = []
    for c in rec.candidates:
        cands.append({"id": c.id, "example_id": c.example_id, "sample_index": c.sample_index,
                      "raw": c.raw, "rules": list(c.experience.rules) if c.experience else None,
                      "failure": c.failure, "cut": list(c.cut), "notes": list(c.notes),
                      "duplicate_of": c.duplicate_of, "val_score": c.val_score,
                      "val_scores": c.val_scores, "chosen": c.id == rec.decision.chosen})
    d = rec.decision
    return {"step": rec.step, "steps": len(run.steps), "task": run.config.task,
            "validation": run.config.validation,
            "calibration": getattr(run.config, "calibration", "none"),
            "experience_before": list(rec.experience_before.rules),
            "experience_after": list(rec.experience_after.rules),
            "batch_ids": list(rec.batch_ids), "validation_ids": list(rec.validation_ids),
            "trials": trials, "candidates": cands,
            "current_score": d.current_score, "best_score": d.best_score,
            "accepted": d.accepted, "chosen": d.chosen, "reason": d.reason,
            "usage": rec.usage, "seconds": rec.seconds}


def _f(x, fmt=".3f") -> str:
    return "-" if x is None else format(x, fmt)


# -- text -----------------------------------------------------------------------------------
def _rules_text(rules: list[str]) -> str:
    return "\n".join(f"    {i}. {r}" for i, r in enumerate(rules, 1)) or "    (no rules)"


def render_text(view: dict) -> str:
    """One step as plain text (what the widget and the printed view show)."""
    v = view
    lines = [f"== step {v['step'] + 1} of {v['steps']} ({v['task']}, validation {v['validation']}, "
             f"calibration {v['calibration']}) ==",
             "experience before (E_t):", _rules_text(v["experience_before"]),
             f"trials on the mini-batch ({len(v['trials'])} examples):"]
    for tr in v["trials"]:
        w, wo = tr["with"], tr["without"]
        head = f"  {tr['example_id']}"
        if tr["input"]:
            head += f": {tr['input'][:90]}" + (f"  [gold: {tr['gold']}]" if tr["gold"] else "")
        lines.append(head)
        lines.append(f"     with E_t: {w['answer']!r} (score {_f(w['score'], '.2f')})"
                     + (f"   without: {wo['answer']!r} (score {_f(wo['score'], '.2f')})"
                        f"   delta {_f(tr['effect'], '+.2f')}" if wo else "   (no comparison trial)"))
    lines.append(f"candidates ({len(v['candidates'])}), validation on |D_t| = {len(v['validation_ids'])}:")
    for c in v["candidates"]:
        mark = "*" if c["chosen"] else " "
        if c["failure"]:
            status = f"FAILED: {c['failure']}"
        elif c["duplicate_of"]:
            status = f"same as {c['duplicate_of']}, v = {_f(c['val_score'])}"
        else:
            status = f"{len(c['rules'])} rules, v = {_f(c['val_score'])}"
        lines.append(f" {mark}{c['id']:<5}from {c['example_id']} sample {c['sample_index']}: {status}")
        lines += [f"       | {ln}" for ln in (c["raw"] or "(empty reply)").splitlines()[:8]]
        if c["rules"] is not None:
            lines += [f"       rule {i}: {r}" for i, r in enumerate(c["rules"], 1)]
        if c["cut"]:
            lines.append(f"       cut by the rule cap: {len(c['cut'])} rule(s)")
    verdict = "ACCEPTED" if v["accepted"] else "E_t KEPT"
    lines += [f"decision: {verdict}: {v['reason']}",
              f"   v(E_t) on D_t = {_f(v['current_score'])}, best candidate = {_f(v['best_score'])}",
              "experience after (E_t+1):", _rules_text(v["experience_after"])]
    return "\n".join(lines)


# -- the widget ----------------------------------------------------------------------------------
def widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def explore(run_or_dir, *, examples: dict | str | None = "auto", widgets: bool | None = None,
            steps: list[int] | None = None):
    """Step through a run.  In a Jupyter kernel with ipywidgets: returns a step
    slider over :func:`render_text` (``ipywidgets.interactive``, displayed as the
    cell's result).  Otherwise (or with ``widgets=False``) prints every step (or
    ``steps``, 1-based) as text."""
    run = as_run(run_or_dir)
    if examples == "auto":
        examples = example_texts(run)
    if not run.steps:
        print("this run has no finished step yet")
        return None
    show = lambda step: print(render_text(step_view(run, step - 1, examples)))
    use_widgets = widgets_available() if widgets is None else widgets
    if use_widgets:
        try:
            import ipywidgets as W
        except ImportError:
            pass
        else:
            return W.interactive(show, step=W.IntSlider(value=1, min=1, max=len(run.steps),
                                                        continuous_update=False))
    for t in (steps or range(1, len(run.steps) + 1)):
        show(t)
        print()
    return None


__all__ = ["explore", "step_view", "render_text", "example_texts", "as_run", "widgets_available"]
