"""The learner as the optimizer: type candidate rules, see whether SEO would take them.

SEO's gate, steps 4 and 5 of every step, applied to rules a person writes:

    D_t   = sample_validation_set(train, |D_t|, Random(seed, try, ...))   a fresh draw per try
    v(E)  = mean metric of the generator with E over D_t                  (score_experiences)
    E_t+1 = E' if v(E') > v(E_t) + min_improvement else E_t               (select)

The same functions of :mod:`seo_lite.method.seo` do the work, so the verdict is the
one a run would reach for the same candidate on the same D_t.  An accepted
candidate becomes the new E_t, as in a run.  Every try is appended to a JSON
log (rules, E_t, D_t ids, per-example scores, decision, time) so that a class
can compare who found what.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..method.config import SEOConfig
from ..method.experience import Experience
from ..machinery.files import save_json
from ..method.seo import Candidate, _mean, sample_validation_set, score_experiences, select, step_rng

_NUMBERED = re.compile(r"^\s*(?:\(?\d{1,3}[.):\]]|[-*\u2022+])\s+")


def rules_from_text(text: str | Sequence[str], max_rules: int):
    """A learner's rules (one per line, numbered or not, or a list of strings),
    read like an optimizer reply: :meth:`Experience.parse` with the rule cap."""
    lines = [str(x) for x in text] if not isinstance(text, str) else text.splitlines()
    items = [ln.strip() for ln in lines if ln.strip()]
    as_list = "\n".join(ln if _NUMBERED.match(ln) else f"- {ln}" for ln in items)
    return Experience.parse(as_list, max_rules)


@dataclass
class Try:
    """One candidate a learner proposed, and SEO's verdict on it."""

    number: int
    who: str
    rules: list[str]
    experience_t: list[str]
    validation_ids: list[str]
    scores_t: list[float]
    scores_candidate: list[float]
    v_t: float
    v_candidate: float
    accepted: bool
    reason: str
    cut: list[str] = field(default_factory=list)
    timestamp: str = ""

    def __str__(self) -> str:
        verdict = "SEO would ACCEPT these rules" if self.accepted else "SEO would REJECT these rules"
        lines = [f"try {self.number}: {verdict}",
                 f"  v(E_t)       = {self.v_t:.3f}   (E_t: {len(self.experience_t)} rules)",
                 f"  v(your rules)= {self.v_candidate:.3f}   on a fresh D_t of "
                 f"{len(self.validation_ids)} training examples",
                 f"  {self.reason}"]
        if self.cut:
            lines.append(f"  cut (beyond max_rules): {self.cut}")
        return "\n".join(lines)


class Playground:
    """The learner proposes candidates; SEO's validation and selection judge them.

    ``train`` is the training split D_t is drawn from; ``config`` gives
    ``val_size``, ``max_rules``, ``min_improvement`` and ``seed``; ``log`` is
    the JSON file every try is appended to (None: no log)."""

    def __init__(self, task, generator, train, config: SEOConfig, *,
                 experience: Experience | None = None,
                 log: str | os.PathLike | None = "runs/learner_tries.json", who: str = "learner"):
        if config.validation == "none":
            raise ValueError("the playground shows the validation gate; use validation='stochastic'")
        self.task, self.generator, self.train, self.config = task, generator, list(train), config
        self.experience = experience if experience is not None else Experience(config.initial_experience)
        self.log = Path(log) if log is not None else None
        self.who = who
        self.tries: list[Try] = []

    def submit(self, text: str | Sequence[str]) -> Try:
        """Score ``text`` (the learner's rules) against E_t on a fresh D_t and decide."""
        parsed = rules_from_text(text, self.config.max_rules)
        if not parsed.ok:
            raise ValueError("no rules found: write one rule per line")
        # numbered from 1 across the sessions that share a log (each try draws its own D_t)
        number = 1 + (len(self.read_log(self.log)) if self.log is not None else len(self.tries))
        rng = step_rng(self.config.seed, number - 1, "learner-validation")   # try n draws stream n-1
        d_t = sample_validation_set(self.train, self.config.val_size, rng)
        cand = Candidate(id="your rules", example_id="", sample_index=number,
                         raw="\n".join(parsed.experience.rules), experience=parsed.experience,
                         cut=parsed.cut)
        if parsed.experience.rules == self.experience.rules:
            cand.duplicate_of = "E_t"
        s_t, s_c = score_experiences(self.task, self.generator, [self.experience, parsed.experience], d_t)
        cand.val_scores, cand.val_score = s_c, _mean(s_c)
        v_t, v_c = _mean(s_t), _mean(s_c)
        decision = select([cand], v_t, self.config,
                          step_rng(self.config.seed, number - 1, "learner-select"))
        t = Try(number=number, who=self.who, rules=parsed.experience.to_list(),
                experience_t=self.experience.to_list(), validation_ids=[ex.id for ex in d_t],
                scores_t=s_t, scores_candidate=s_c, v_t=v_t, v_candidate=v_c,
                accepted=decision.accepted, reason=_in_words(decision, cand, v_t, v_c),
                cut=list(parsed.cut),
                timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.tries.append(t)
        if self.log is not None:
            self._append(t)
        if decision.accepted:
            self.experience = parsed.experience
        return t

    def _append(self, t: Try) -> None:
        entries = self.read_log(self.log)
        entry = asdict(t)
        entry.update(task=self.task.name, answer_mode=self.task.answer_mode,
                     generator=self.generator.name, seed=self.config.seed,
                     val_size=self.config.val_size)
        entries.append(entry)
        save_json(entries, self.log)

    @staticmethod
    def read_log(path: str | os.PathLike | None) -> list[dict]:
        """Every try recorded in ``path`` (an empty list if there is none yet)."""
        if path is None or not Path(path).is_file():
            return []
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path} is not a learner log (a JSON list of tries)")
        return data

    def widget(self, placeholder: str = "one rule per line"):
        """A text area and a button; the button calls :meth:`submit` and prints its verdict.
        Returns the ipywidgets box (``box.children`` = text area, button, output)."""
        import ipywidgets as w

        area = w.Textarea(placeholder=placeholder, layout=w.Layout(width="95%", height="120px"))
        button = w.Button(description="Would SEO accept?", button_style="primary")
        out = w.Output()

        def on_click(_):
            with out:
                out.clear_output()
                try:
                    print(self.submit(area.value))
                except ValueError as e:
                    print(f"not scored: {e}")
                print("current E_t:\n" + (self.experience.render() or "  (no rules)"))

        button.on_click(on_click)
        return w.VBox([area, button, out])


def _in_words(decision, cand: Candidate, v_t: float, v_c: float) -> str:
    """``select``'s verdict said to the learner (its own reason names candidate ids)."""
    if cand.duplicate_of == "E_t":
        return "these rules are E_t already: nothing new to try; E_t kept"
    if decision.accepted:
        return f"your rules beat E_t on D_t ({v_c:.3f} > {v_t:.3f}): they become E_t"
    return f"your rules did not beat E_t on D_t ({v_c:.3f} <= {v_t:.3f}): E_t kept"


__all__ = ["Playground", "Try", "rules_from_text"]
