"""A task: instruction + input formatting + answer parsing + metric.

Everything SEO needs to know about a task family sits behind this class:

* ``messages(example, experience)`` builds the generator's prompt, with the
  experience block or without it (``experience=None``, the comparison trial);
* ``predict(llm, examples, experience)`` runs the generator and returns one
  :class:`Prediction` per example, with its score in [0, 1].  SEO's
  performance effect is a difference of these scores,

      delta_E(x) = score(answer with E, x) - score(answer without E, x);

* ``corpus_metrics`` gives the field's standard numbers for reports (EM/F1,
  BLEU/chrF, accuracy/macro-F1).

Two answer modes: ``"generate"`` (free text, parsed into an answer, as the
paper does) and ``"score"`` (for tasks with a closed label set: the label with
the highest log-likelihood under the model, as evaluation harnesses do; the
small embedded model needs it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..experience import Experience
from ..llm.base import LLM, GenParams, LoglikelihoodRequest, Request
from ..prompts import generator_messages

ANSWER_MODES = ("generate", "score")


class TaskError(ValueError):
    """Unknown task, bad task option or bad example (raised before any model call)."""


@dataclass(frozen=True)
class Example:
    """One example in the common schema of every task family.

    ``input`` is what the task asks about (a question, a source sentence, a
    text to classify); ``answers`` the gold answer first, then aliases or
    further references; ``context`` optional supporting text (HotpotQA's
    paragraphs); ``meta`` anything else worth keeping (type, language pair)."""

    id: str
    input: str
    answers: tuple[str, ...]
    context: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "answers", tuple(self.answers))

    @property
    def gold(self) -> str:
        return self.answers[0]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answers"] = list(self.answers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Example":
        return cls(id=d["id"], input=d["input"], answers=tuple(d["answers"]),
                   context=d.get("context"), meta=dict(d.get("meta") or {}))


@dataclass
class Prediction:
    """The generator's answer to one example and its score in [0, 1]."""

    example_id: str
    text: str             # raw model output (generate) or the chosen label (score)
    answer: str           # parsed answer
    score: float          # per-example metric in [0, 1]
    cached: bool = False
    label_logprobs: list[float] | None = None

    def to_dict(self) -> dict:
        """For logs: everything but ``cached`` (usage counts cache hits; a log
        should read the same whether its answers came from the cache or not)."""
        d = asdict(self)
        d.pop("cached")
        if d["label_logprobs"] is None:
            d.pop("label_logprobs")
        return d


class Task:
    """Base class; a family sets the class attributes and implements
    ``format_input``, ``parse_answer``, ``score`` and ``corpus_metrics``."""

    name: str = "task"
    family: str = "generic"
    instruction: str = ""
    labels: tuple[str, ...] | None = None      # closed label set, if any
    answer_mode: str = "generate"
    gen_params: GenParams = GenParams(max_new_tokens=64)
    metric_names: tuple[str, ...] = ()

    def __init__(self, *, answer_mode: str | None = None, instruction: str | None = None,
                 max_new_tokens: int | None = None):
        if answer_mode is not None:
            if answer_mode not in ANSWER_MODES:
                raise TaskError(f"unknown answer_mode {answer_mode!r}; use one of {ANSWER_MODES}")
            if answer_mode == "score" and not self.labels:
                raise TaskError(f"task {self.name!r} has no label set, so answer_mode='score' "
                                "is not available; use 'generate'")
            self.answer_mode = answer_mode
        if instruction is not None:
            self.instruction = instruction
        if max_new_tokens is not None:
            self.gen_params = GenParams(**{**asdict(self.gen_params), "max_new_tokens": max_new_tokens})

    # -- what a family implements ----------------------------------------------
    def format_input(self, example: Example) -> str:
        """The example as the generator sees it (after the instruction and rules)."""
        return example.input if example.context is None else f"{example.context}\n\n{example.input}"

    def parse_answer(self, text: str) -> str:
        return text.strip()

    def score(self, answer: str, example: Example) -> float:
        raise NotImplementedError

    def corpus_metrics(self, answers: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------
    def messages(self, example: Example, experience: Experience | None = None) -> list[dict]:
        return generator_messages(self.instruction, self.format_input(example), experience)

    def requests(self, examples: Sequence[Example], experience: Experience | None = None):
        """The LLM requests ``predict`` sends (one per example)."""
        return [self._request(ex, experience) for ex in examples]

    def _request(self, example: Example, experience: Experience | None):
        if self.answer_mode == "score":
            return LoglikelihoodRequest(self.messages(example, experience), self.labels)
        return Request(self.messages(example, experience), self.gen_params)

    def predict(self, llm: LLM, examples: Sequence[Example], experience: Experience | None = None,
                *, role: str = "generator", progress: bool | str = False) -> list[Prediction]:
        """Run the generator on ``examples`` (with ``experience``, or without it)."""
        return self.predict_pairs(llm, [(ex, experience) for ex in examples],
                                  role=role, progress=progress)

    def predict_pairs(self, llm: LLM, pairs: Sequence[tuple[Example, Experience | None]],
                      *, role: str = "generator", progress: bool | str = False) -> list[Prediction]:
        """Answer many (example, experience) pairs in one batched call: validation
        scores every candidate on D_t this way."""
        reqs = [self._request(ex, exp) for ex, exp in pairs]
        examples = [ex for ex, _ in pairs]
        if self.answer_mode == "score":
            out = llm.loglikelihood(reqs, role=role, progress=progress)
            preds = []
            for ex, s in zip(examples, out):
                label = self.labels[s.best]
                preds.append(Prediction(ex.id, label, label, float(self.score(label, ex)),
                                        s.cached, [round(x, 4) for x in s.logprobs]))
            return preds
        out = llm.generate(reqs, role=role, progress=progress)
        preds = []
        for ex, c in zip(examples, out):
            ans = self.parse_answer(c.text)
            preds.append(Prediction(ex.id, c.text, ans, float(self.score(ans, ex)), c.cached))
        return preds

    def evaluate_predictions(self, preds: Sequence[Prediction],
                             examples: Sequence[Example]) -> dict[str, float]:
        return self.corpus_metrics([p.answer for p in preds], examples)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "answer_mode": self.answer_mode,
                "labels": list(self.labels) if self.labels else None,
                "metrics": list(self.metric_names), "instruction": self.instruction}

    def __repr__(self):
        return f"<Task {self.name} ({self.family}, {self.answer_mode})>"
