"""Step through a run: what SEO saw, proposed, measured and decided at each step.

One step t of a run directory holds everything the paper's loop did:

    E_t  ->  trials (Y_E, Y, delta per example)  ->  k candidates per example
         ->  v(E) on D_t for E_t and every candidate  ->  decision  ->  E_{t+1}

:func:`explore` shows one step at a time: in JupyterLab as an ipywidgets
panel (a step slider and a candidate picker), elsewhere as printed text.
Both views come from :func:`step_view`, a plain dictionary, so the rendering
is tested without a browser.  Optimizer replies are untrusted text and are
HTML-escaped before they reach the page.
"""
from __future__ import annotations

import html
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


def _pred(p: dict | None) -> dict | None:
    if p is None:
        return None
    return {"answer": p.get("answer", ""), "text": p.get("text", ""), "score": p.get("score"),
            "label_logprobs": p.get("label_logprobs"),
            "label_prior": p.get("label_prior"), "calibrated_probs": p.get("calibrated_probs")}


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
                       "with": _pred(tr.get("with")), "without": _pred(tr.get("without")),
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


def render_text(view: dict, *, raw: bool = True) -> str:
    """One step as plain text (the view when widgets are not available)."""
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
        if raw:
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


# -- HTML -----------------------------------------------------------------------------------
_CSS = ("<style>.seo-x table{border-collapse:collapse;font-size:12px;margin:4px 0}"
        ".seo-x td,.seo-x th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}"
        ".seo-x pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;font-size:12px;margin:2px 0}"
        ".seo-x .ok{color:#2e933c;font-weight:bold}.seo-x .no{color:#d1495b;font-weight:bold}"
        ".seo-x .cols{display:flex;gap:24px}.seo-x .cols>div{flex:1}</style>")


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _rules_html(rules: list[str]) -> str:
    if not rules:
        return "<i>(no rules)</i>"
    return "<ol>" + "".join(f"<li>{_e(r)}</li>" for r in rules) + "</ol>"


def render_step_html(view: dict) -> str:
    """The step's experience before/after, trials, candidate table and decision."""
    v = view
    verdict = (f"<span class='ok'>accepted {v['chosen']}</span>" if v["accepted"]
               else "<span class='no'>E_t kept</span>")
    out = [_CSS, "<div class='seo-x'>",
           f"<h4>Step {v['step'] + 1} of {v['steps']}: {verdict}</h4>",
           f"<p>{_e(v['reason'])}<br>v(E_t) on D_t = {_f(v['current_score'])}, "
           f"best candidate = {_f(v['best_score'])}, |D_t| = {len(v['validation_ids'])} "
           f"(validation {_e(v['validation'])}, label calibration {_e(v['calibration'])})</p>",
           "<div class='cols'><div><b>E_t (before)</b>", _rules_html(v["experience_before"]),
           "</div><div><b>E_t+1 (after)</b>", _rules_html(v["experience_after"]), "</div></div>",
           "<b>Trials</b><table><tr><th>example</th><th>gold</th><th>with E_t</th>"
           "<th>without</th><th>delta</th></tr>"]
    for tr in v["trials"]:
        w, wo = tr["with"], tr["without"]
        ex = _e(tr["example_id"]) + (f"<br><small>{_e(tr['input'][:160])}</small>" if tr["input"] else "")
        out.append(f"<tr><td>{ex}</td><td>{_e(tr['gold'] or '')}</td>"
                   f"<td>{_e(w['answer'])} ({_f(w['score'], '.2f')})</td>"
                   f"<td>{_e(wo['answer']) + ' (' + _f(wo['score'], '.2f') + ')' if wo else '-'}</td>"
                   f"<td>{_f(tr['effect'], '+.2f')}</td></tr>")
    out.append("</table><b>Candidates</b><table><tr><th></th><th>id</th><th>from example</th>"
               "<th>sample</th><th>rules</th><th>v on D_t</th><th>note</th></tr>")
    for c in v["candidates"]:
        note = (f"failed: {c['failure']}" if c["failure"] else
                f"same as {c['duplicate_of']}" if c["duplicate_of"] else
                f"{len(c['cut'])} cut by the cap" if c["cut"] else "")
        out.append(f"<tr><td>{'&#9733;' if c['chosen'] else ''}</td><td>{_e(c['id'])}</td>"
                   f"<td>{_e(c['example_id'])}</td><td>{c['sample_index']}</td>"
                   f"<td>{len(c['rules']) if c['rules'] is not None else '-'}</td>"
                   f"<td>{_f(c['val_score'])}</td><td>{_e(note)}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


def render_candidate_html(view: dict, candidate_id: str) -> str:
    """One candidate: the optimizer's raw reply, what was parsed, its scores."""
    by_id = {c["id"]: c for c in view["candidates"]}
    if candidate_id not in by_id:
        return "<div class='seo-x'><i>no candidate selected</i></div>"
    c = by_id[candidate_id]
    parts = [_CSS, "<div class='seo-x'>",
             f"<b>{_e(c['id'])}</b> from example {_e(c['example_id'])}, sample index "
             f"{c['sample_index']}{' (chosen)' if c['chosen'] else ''}",
             "<div>optimizer reply (raw, untrusted):</div>", f"<pre>{_e(c['raw'] or '(empty)')}</pre>"]
    if c["failure"]:
        parts.append(f"<div class='no'>no experience: {_e(c['failure'])}</div>")
    else:
        parts += ["<div>parsed rules:</div>", _rules_html(c["rules"])]
    if c["cut"]:
        parts += ["<div>cut by the rule cap:</div>", _rules_html(c["cut"])]
    if c["notes"]:
        parts.append("<div><small>" + "<br>".join(_e(n) for n in c["notes"]) + "</small></div>")
    if c["duplicate_of"]:
        parts.append(f"<div>identical to {_e(c['duplicate_of'])}: scored once</div>")
    if c["val_scores"] is not None:
        parts.append(f"<div>v on D_t = {_f(c['val_score'])} (per example: "
                     f"{_e(' '.join(_f(s, '.0f') if s in (0, 1) else _f(s, '.2f') for s in c['val_scores']))})</div>")
    parts.append("</div>")
    return "".join(parts)


def run_header_html(run: SEORun) -> str:
    cfg = run.config
    who = f"generator {cfg.generator}" + ("" if cfg.optimizer == cfg.generator
                                          and cfg.optimizer_options == cfg.generator_options
                                          else f", optimizer {cfg.optimizer} {cfg.optimizer_options or ''}")
    return (f"{_CSS}<div class='seo-x'><b>SEO on {_e(cfg.task)}</b>: {len(run.steps)} steps, "
            f"{run.accepted} accepted; {_e(who)}; n={cfg.batch_size}, k={cfg.num_candidates}, "
            f"|D_t|={cfg.val_size}, validation {cfg.validation}, comparison trials "
            f"{'on' if cfg.comparison_trials else 'off'}, label calibration "
            f"{_e(getattr(cfg, 'calibration', 'none'))}</div>")


# -- the widget ----------------------------------------------------------------------------------
class Explorer:
    """A step slider, the step's panel and a candidate picker (ipywidgets)."""

    def __init__(self, run: SEORun, examples: dict | None = None):
        import ipywidgets as W

        if not run.steps:
            raise ValueError("the run has no finished step yet")
        self.run, self.examples = run, examples or {}
        self.header = W.HTML(run_header_html(run))
        self.step = W.IntSlider(value=1, min=1, max=len(run.steps), description="step",
                                continuous_update=False)
        self.candidate = W.Dropdown(description="candidate", options=[])
        self.step_html = W.HTML()
        self.candidate_html = W.HTML()
        self.step.observe(lambda change: self._show_step(), names="value")
        self.candidate.observe(lambda change: self._show_candidate(), names="value")
        self.widget = W.VBox([self.header, self.step, self.step_html, self.candidate,
                              self.candidate_html])
        self._show_step()

    def view(self) -> dict:
        return step_view(self.run, self.step.value - 1, self.examples)

    def _show_step(self) -> None:
        v = self.view()
        self.step_html.value = render_step_html(v)
        opts = [(f"{c['id']}{' *' if c['chosen'] else ''} ({'failed' if c['failure'] else _f(c['val_score'])})",
                 c["id"]) for c in v["candidates"]]
        chosen = v["chosen"] or (opts[0][1] if opts else None)
        self.candidate.options = opts
        self.candidate.value = chosen
        self._show_candidate()

    def _show_candidate(self) -> None:
        self.candidate_html.value = render_candidate_html(self.view(), self.candidate.value)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


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
    """Step through a run.  In a Jupyter kernel with ipywidgets: returns an
    :class:`Explorer` (displayed as the cell's result).  Otherwise (or with
    ``widgets=False``) prints every step (or ``steps``, 1-based) as text."""
    run = as_run(run_or_dir)
    if examples == "auto":
        examples = example_texts(run)
    if not run.steps:
        print("this run has no finished step yet")
        return None
    use_widgets = widgets_available() if widgets is None else widgets
    if use_widgets:
        try:
            return Explorer(run, examples)
        except ImportError:
            pass
    for t in (steps or range(1, len(run.steps) + 1)):
        print(render_text(step_view(run, t - 1, examples)))
        print()
    return None


__all__ = ["explore", "Explorer", "step_view", "render_text", "render_step_html",
           "render_candidate_html", "example_texts", "as_run", "widgets_available"]
