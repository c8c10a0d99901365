"""Stochastic Experience Optimization, one step at a time.

SEO learns an experience E (a short list of rules in the generator's prompt)
for a frozen generator M_gen, with a frozen optimizer M_opt.  Step t:

1. **Trials.**  Draw a mini-batch B_t of n training examples.  M_gen answers
   each x in B_t twice: with E_t (Y_E) and without it (Y).
2. **Performance effect.**  delta_E(x) = metric(Y_E, x) - metric(Y, x).
3. **Update.**  For each x, M_opt sees the example, the gold answer, E_t, both
   trials and delta, and writes k candidate experiences E'_{x,1..k}
   (k samples at temperature > 0).
4. **Stochastic validation.**  A fresh random D_t is drawn from the training
   split (without B_t); every candidate and E_t are scored on it:

       v(E) = 1/|D_t| * sum_{x in D_t} metric(M_gen(x; E), x)

5. **Selection.**  E* = argmax_E' v(E');  E_{t+1} = E* if v(E*) > v(E_t), else E_t
   (ties keep E_t).

Ablations (``SEOConfig``): ``validation="fixed"`` reuses one D drawn once;
``validation="none"`` takes a candidate without checking it;
``comparison_trials=False`` shows the optimizer only Y_E, with no Y and no delta.

Optimizer replies are untrusted text: a reply with no rules is kept as a
*failed candidate* (raw text and reason) and skipped; rules beyond
``max_rules`` are cut and the cut is recorded.  Identical candidates are
scored once.  Every random choice of step t comes from ``Random(seed, t)``,
so a resumed run draws what an unbroken one would.

This module is the algorithm only: it reads no file and loads no model.
Building the task, data and models a config names is
:func:`seo_lite.machinery.build.prepare`; running the steps into a run directory (and
resuming one) is :func:`seo_lite.machinery.training.train`.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

from .config import SEOConfig
from .experience import Experience
from ..llm.base import LLM, GenParams, Request, Usage, merge_usage
from .prompts import optimizer_messages
from ..tasks.base import Example, Prediction, Task


def step_rng(seed: int, step: int, purpose: str) -> random.Random:
    """The random stream for one purpose of one step (independent of history)."""
    return random.Random(f"seo:{seed}:{step}:{purpose}")


# -- 1-2. trials and the performance effect ---------------------------------------
@dataclass
class Trial:
    """The generator's two answers to one training example."""

    example: Example
    with_experience: Prediction
    without_experience: Prediction | None     # None when comparison trials are off

    @property
    def effect(self) -> float | None:
        """delta_E = metric(with E_t) - metric(without)."""
        if self.without_experience is None:
            return None
        return self.with_experience.score - self.without_experience.score

    def to_dict(self) -> dict:
        return {"example_id": self.example.id,
                "with": self.with_experience.to_dict(),
                "without": self.without_experience.to_dict() if self.without_experience else None,
                "effect": self.effect}


def run_trials(task: Task, generator: LLM, batch: Sequence[Example], experience: Experience,
               *, comparison_trials: bool = True, progress: bool | str = False) -> list[Trial]:
    """Answer the mini-batch with E_t and (for comparison) without it, in one call."""
    pairs = [(ex, experience) for ex in batch]
    if comparison_trials:
        pairs += [(ex, None) for ex in batch]
    preds = task.predict_pairs(generator, pairs, progress=progress)
    n = len(batch)
    return [Trial(ex, preds[i], preds[n + i] if comparison_trials else None)
            for i, ex in enumerate(batch)]


# -- 3. the update: k candidates per example ------------------------------------------
@dataclass
class Candidate:
    """One optimizer reply and what came of it."""

    id: str
    example_id: str
    sample_index: int
    raw: str
    experience: Experience | None
    failure: str | None = None           # why no experience could be read
    cut: tuple[str, ...] = ()            # rules beyond max_rules
    notes: tuple[str, ...] = ()
    duplicate_of: str | None = None      # id of an identical candidate, or "E_t"
    val_score: float | None = None
    val_scores: list[float] | None = None

    @property
    def valid(self) -> bool:
        return self.experience is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["experience"] = self.experience.to_list() if self.experience is not None else None
        d["cut"], d["notes"] = list(self.cut), list(self.notes)
        return d


def optimizer_requests(task: Task, trials: Sequence[Trial], experience: Experience,
                       config: SEOConfig, step: int) -> list[Request]:
    """k requests per trial; sample indices differ per step so that a repeated
    prompt in a later step draws new samples instead of replaying old ones.
    The reply is pre-filled with ``config.opt_prefix`` ("1.") on local models,
    which keeps a small optimizer writing a numbered list; generation ends once
    that list is over (``max_rules`` distinct rules, or prose after the list),
    since the parser reads nothing after it."""
    params = GenParams(temperature=config.opt_temperature, top_p=config.opt_top_p,
                       max_new_tokens=config.opt_max_new_tokens, seed=config.seed,
                       stop_list_after=config.max_rules)
    reqs = []
    for tr in trials:
        w, wo = tr.with_experience, tr.without_experience
        msgs = optimizer_messages(
            instruction=task.instruction, input_text=task.format_input(task.fitted(tr.example)),
            gold=tr.example.gold, experience=experience, with_text=w.text, with_score=w.score,
            max_rules=config.max_rules,
            without_text=wo.text if wo is not None else None,
            without_score=wo.score if wo is not None else None, effect=tr.effect)
        for j in range(config.num_candidates):
            reqs.append(Request(msgs, params, sample_index=step * config.num_candidates + j,
                                prefix=config.opt_prefix))
    return reqs


def propose_candidates(task: Task, optimizer: LLM, trials: Sequence[Trial],
                       experience: Experience, config: SEOConfig, step: int,
                       *, progress: bool | str = False) -> list[Candidate]:
    """Ask M_opt for k candidate experiences per trial and parse each reply."""
    reqs = optimizer_requests(task, trials, experience, config, step)
    replies = optimizer.generate(reqs, role="optimizer", progress=progress)
    out: list[Candidate] = []
    seen: dict[tuple, str] = {experience.rules: "E_t"}
    kept = 0                     # tokens of the freshly generated replies that became rules
    for i, (req, reply) in enumerate(zip(reqs, replies)):
        tr = trials[i // config.num_candidates]
        parsed = Experience.parse(reply.text, config.max_rules)
        if not reply.cached and parsed.experience:
            kept += optimizer.count_tokens(parsed.experience.render()) or 0
        c = Candidate(id=f"c{i}", example_id=tr.example.id, sample_index=req.sample_index,
                      raw=reply.text, experience=parsed.experience, failure=parsed.error,
                      cut=parsed.cut, notes=parsed.notes)
        if c.valid:
            key = c.experience.rules
            if key in seen:
                c.duplicate_of = seen[key]
            else:
                seen[key] = c.id
        out.append(c)
    if kept:
        optimizer.usage.add("optimizer", completion_tokens_kept=kept)
    return out


# -- 4. stochastic validation ----------------------------------------------------------
def sample_validation_set(train: Sequence[Example], size: int, rng: random.Random,
                          exclude: Sequence[Example] = ()) -> list[Example]:
    """D_t: a fresh random subset of the training split (without ``exclude``)."""
    skip = {ex.id for ex in exclude}
    pool = [ex for ex in train if ex.id not in skip]
    if size > len(pool):
        raise ValueError(f"validation set of {size} requested but only {len(pool)} training "
                         "examples are available")
    return rng.sample(pool, size)


def score_experiences(task: Task, generator: LLM, experiences: Sequence[Experience],
                      val_set: Sequence[Example], *, progress: bool | str = False
                      ) -> list[list[float]]:
    """Per-example scores of each experience on the same D_t (one batched call)."""
    pairs = [(ex, e if e else None) for e in experiences for ex in val_set]
    preds = task.predict_pairs(generator, pairs, progress=progress)
    m = len(val_set)
    return [[p.score for p in preds[i * m:(i + 1) * m]] for i in range(len(experiences))]


# -- 5. selection ------------------------------------------------------------------------
@dataclass
class StepDecision:
    accepted: bool
    chosen: str | None              # candidate id that became E_{t+1}
    current_score: float | None     # v(E_t) on D_t
    best_score: float | None        # v(E*) on D_t
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def select(candidates: Sequence[Candidate], current_score: float | None, config: SEOConfig,
           rng: random.Random) -> StepDecision:
    """Pick E_{t+1}.  With validation: the best-scoring candidate, only if it beats
    E_t by more than ``min_improvement`` (ties keep E_t).  Without: a random valid
    candidate, taken unchecked (the paper's ablation)."""
    fresh = [c for c in candidates if c.valid and c.duplicate_of is None]
    if not fresh:
        n_bad = sum(not c.valid for c in candidates)
        return StepDecision(False, None, current_score, None,
                            f"no new candidate ({n_bad} unparseable, "
                            f"{len(candidates) - n_bad} repeated E_t or each other)")
    if config.validation == "none":
        c = rng.choice(fresh)
        return StepDecision(True, c.id, None, None, "validation off: candidate taken unchecked")
    best = max(fresh, key=lambda c: c.val_score)          # first of equals wins
    if best.val_score > current_score + config.min_improvement:
        return StepDecision(True, best.id, current_score, best.val_score,
                            f"{best.id} beat E_t on D_t ({best.val_score:.3f} > {current_score:.3f})")
    return StepDecision(False, None, current_score, best.val_score,
                        f"best candidate {best.id} did not beat E_t "
                        f"({best.val_score:.3f} <= {current_score:.3f}); E_t kept")


# -- one step ------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """Everything that happened in one step: what the run log stores."""

    step: int
    experience_before: Experience
    batch_ids: list[str]
    trials: list[dict]
    candidates: list[Candidate]
    validation_ids: list[str]
    current_scores: list[float] | None
    decision: StepDecision
    experience_after: Experience
    usage: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"step": self.step, "experience_before": self.experience_before.to_list(),
                "batch_ids": self.batch_ids, "trials": self.trials,
                "candidates": [c.to_dict() for c in self.candidates],
                "validation_ids": self.validation_ids, "current_scores": self.current_scores,
                "decision": self.decision.to_dict(),
                "experience_after": self.experience_after.to_list(),
                "usage": self.usage, "seconds": round(self.seconds, 3)}


def fixed_validation_set(train: Sequence[Example], config: SEOConfig) -> list[Example]:
    """The one D of ``validation="fixed"``, drawn once from the training split."""
    return sample_validation_set(train, config.val_size, step_rng(config.seed, -1, "fixed-D"))


def seo_step(task: Task, generator: LLM, optimizer: LLM, train: Sequence[Example],
             experience: Experience, config: SEOConfig, step: int, *,
             progress: bool = False) -> StepRecord:
    """One SEO step from E_t to E_{t+1} (see the module docstring)."""
    t0 = time.perf_counter()
    before = merge_usage(generator, optimizer)
    bar = (lambda s: f"step {step + 1}/{config.steps} {s}") if progress else (lambda s: False)

    batch = step_rng(config.seed, step, "batch").sample(list(train), config.batch_size)
    trials = run_trials(task, generator, batch, experience,
                        comparison_trials=config.comparison_trials, progress=bar("trials"))
    candidates = propose_candidates(task, optimizer, trials, experience, config, step,
                                    progress=bar("optimizer"))

    val_set: list[Example] = []
    current_scores = current_score = None
    if config.validation != "none":
        if config.validation == "fixed":
            val_set = fixed_validation_set(train, config)
        else:
            val_set = sample_validation_set(train, config.val_size,
                                            step_rng(config.seed, step, "validation"), batch)
        fresh = [c for c in candidates if c.valid and c.duplicate_of is None]
        scores = score_experiences(task, generator, [experience] + [c.experience for c in fresh],
                                   val_set, progress=bar("validation"))
        current_scores = scores[0]
        current_score = _mean(current_scores)
        for c, s in zip(fresh, scores[1:]):
            c.val_scores, c.val_score = s, _mean(s)
        by_id = {c.id: c for c in candidates}
        for c in candidates:                     # duplicates share their twin's score
            if c.duplicate_of == "E_t":
                c.val_scores, c.val_score = current_scores, current_score
            elif c.duplicate_of:
                c.val_scores, c.val_score = by_id[c.duplicate_of].val_scores, by_id[c.duplicate_of].val_score

    decision = select(candidates, current_score, config, step_rng(config.seed, step, "select"))
    after = experience
    if decision.accepted:
        after = next(c.experience for c in candidates if c.id == decision.chosen)
    return StepRecord(step=step, experience_before=experience,
                      batch_ids=[ex.id for ex in batch], trials=[tr.to_dict() for tr in trials],
                      candidates=candidates, validation_ids=[ex.id for ex in val_set],
                      current_scores=current_scores, decision=decision, experience_after=after,
                      usage=Usage.diff(merge_usage(generator, optimizer), before),
                      seconds=time.perf_counter() - t0)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


# -- the loop ------------------------------------------------------------------------------
def seo_steps(task: Task, generator: LLM, optimizer: LLM, train: Sequence[Example],
              config: SEOConfig, experience: Experience, *, start: int = 0,
              progress: bool = False) -> Iterator[StepRecord]:
    """Steps ``start`` .. T-1 from ``experience`` (E_start), each yielded as it
    finishes, so the caller can log it (:func:`seo_lite.machinery.training.train` appends
    it to a run directory) before the next one begins."""
    for t in range(start, config.steps):
        record = seo_step(task, generator, optimizer, train, experience, config, t,
                          progress=progress)
        yield record
        experience = record.experience_after


@dataclass
class SEORun:
    """A finished (or resumed) run: its config and one record per step."""

    config: SEOConfig
    steps: list[StepRecord]
    initial: Experience
    run_dir: str | None = None

    @property
    def experience(self) -> Experience:
        """The learned experience (E_T)."""
        return self.steps[-1].experience_after if self.steps else self.initial

    @property
    def experiences(self) -> list[Experience]:
        """E_0, E_1, ..., E_T."""
        return [self.initial] + [s.experience_after for s in self.steps]

    @property
    def accepted(self) -> int:
        return sum(s.decision.accepted for s in self.steps)

    def summary(self) -> str:
        lines = [f"SEO on {self.config.task}: {len(self.steps)} steps, "
                 f"{self.accepted} updates accepted"]
        for s in self.steps:
            d = s.decision
            mark = "accepted" if d.accepted else "kept E_t"
            lines.append(f"  step {s.step + 1}: {mark:<9} {d.reason}")
        lines.append("final experience:\n" + (self.experience.render() or "  (no rules)"))
        return "\n".join(lines)
