"""Evaluation: a learned experience against none on held-out examples.

Not a step of SEO: what a run reports when it is done.  The score of one
experience is the mean per-example metric with a bootstrap interval; the
comparison with no experience is paired (the same examples, both ways):

    gain = 1/N * sum_x [metric(M_gen(x; E), x) - metric(M_gen(x), x)]

:func:`evaluate_run` is a finished run's evaluation: E_T against none on dev
and test, and each distinct E_t on dev (the learning curve).  The run
(``lab.experiment.finalize``) and its dry run (``machinery.dryrun``) both call it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .experience import Experience
from .stats import Estimate, PairedComparison, bootstrap_ci, paired_comparison
from ..llm.base import LLM
from ..tasks.base import Example, Prediction, Task


@dataclass
class Evaluation:
    """A generator with one experience (or none) on one split."""

    split: str
    experience: Experience | None
    score: Estimate                     # mean per-example score with bootstrap CI
    metrics: dict[str, float]           # corpus-level metrics of the task
    predictions: list[Prediction]

    def to_dict(self) -> dict:
        return {"split": self.split,
                "experience": self.experience.to_list() if self.experience is not None else None,
                "score": self.score.to_dict(), "metrics": self.metrics}


def evaluate(task: Task, generator: LLM, examples: Sequence[Example],
             experience: Experience | None = None, *, split: str = "test", n_boot: int = 1000,
             seed: int = 0, progress: bool | str = False) -> Evaluation:
    """Score ``experience`` (None: no experience) on ``examples`` with a bootstrap CI."""
    preds = task.predict(generator, examples, experience if experience else None,
                         progress=progress)
    return Evaluation(split, experience, bootstrap_ci([p.score for p in preds], n_boot=n_boot, seed=seed),
                      task.evaluate_predictions(preds, examples), preds)


@dataclass
class Comparison:
    """The learned experience against no experience on the same examples."""

    with_experience: Evaluation
    without_experience: Evaluation
    paired: PairedComparison

    def to_dict(self) -> dict:
        return {"with": self.with_experience.to_dict(),
                "without": self.without_experience.to_dict(), "paired": self.paired.to_dict()}


def compare(task: Task, generator: LLM, examples: Sequence[Example], experience: Experience,
            *, split: str = "test", n_boot: int = 1000, seed: int = 0,
            progress: bool | str = False) -> Comparison:
    """Evaluate with and without ``experience``; the difference is a paired bootstrap."""
    pairs = [(ex, experience if experience else None) for ex in examples] + \
            [(ex, None) for ex in examples]
    preds = task.predict_pairs(generator, pairs, progress=progress)
    n = len(examples)
    w, wo = preds[:n], preds[n:]
    kw = dict(n_boot=n_boot, seed=seed)
    paired = paired_comparison([p.score for p in w], [p.score for p in wo], **kw)
    return Comparison(
        Evaluation(split, experience, paired.a, task.evaluate_predictions(w, examples), w),
        Evaluation(split, None, paired.b, task.evaluate_predictions(wo, examples), wo),
        paired)


def evaluate_run(task: Task, generator: LLM, splits, experiences: Sequence[Experience], *,
                 n_boot: int = 1000, seed: int = 0, progress: bool = False
                 ) -> tuple[dict[str, Comparison], list[dict]]:
    """``({split: E_T vs no E}, curve)`` for the run's E_0..E_T (E_T is the last):
    :func:`compare` on ``splits.dev`` and ``splits.test`` (those not empty), and the
    dev score of each E_t, each distinct experience scored once."""
    comparisons = {}
    for split in ("dev", "test"):
        if getattr(splits, split):
            comparisons[split] = compare(task, generator, getattr(splits, split), experiences[-1],
                                         split=split, n_boot=n_boot, seed=seed,
                                         progress=f"evaluate {split}" if progress else False)
    curve, seen = [], {}
    for t, exp in enumerate(experiences if splits.dev else ()):
        if exp.rules not in seen:
            seen[exp.rules] = evaluate(task, generator, splits.dev, exp, split="dev", n_boot=0,
                                       progress="dev curve" if progress else False).score.mean
        curve.append({"step": t, "dev": seen[exp.rules]})
    return comparisons, curve
