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
paper does) and ``"rank"`` (for tasks with a closed label set: the labels are
ranked by their log-likelihood under the model and the first is the answer,
as evaluation harnesses do; the small embedded model needs it).  "score"
always means the task's per-example metric; ``"score"`` as an answer mode is
the old name of ``"rank"`` and is still accepted.  Rank mode takes a ``calibration``
(``"none"``, ``"contextual"``, ``"batch"``; see :mod:`.calibration`): the
label prior is divided out before the argmax.

The context window.  A prompt longer than the model's window is refused
before any compute, naming the example; the task option ``max_input_chars=N``
(off by default) cuts each example's input field to N characters.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

from ..method.experience import Experience
from ..llm.base import LLM, ContextWindowError, GenParams, LoglikelihoodRequest, Request
from ..method.prompts import generator_messages
from . import calibration as calib

ANSWER_MODES = ("generate", "rank")
RANK = "rank"
_OLD_ANSWER_MODES = {"score": RANK}     # renamed: "score" means only the task's metric
#: what a flag or notebook parameter accepts: the modes, "auto" (resolved by
#: ``build.resolve_answer_mode``) and the old names
ANSWER_MODE_CHOICES = (*ANSWER_MODES, "auto", *_OLD_ANSWER_MODES)


def normalize_answer_mode(mode: str | None) -> str | None:
    """The current name of an answer mode (the old name ``"score"`` -> ``"rank"``)."""
    return _OLD_ANSWER_MODES.get(mode, mode) if isinstance(mode, str) else mode


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


def row_answers(row: dict) -> tuple[str, ...]:
    """A data row's ``answers`` (one string or a non-empty list of strings) as a tuple."""
    answers = [row["answers"]] if isinstance(row["answers"], str) else row["answers"]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError("'answers' must be a non-empty list of strings")
    return tuple(answers)


@dataclass
class Prediction:
    """The generator's answer to one example and its score in [0, 1]."""

    example_id: str
    text: str             # raw model output (generate) or the chosen label (rank)
    answer: str           # parsed answer
    score: float          # per-example metric in [0, 1]
    cached: bool = False
    label_logprobs: list[float] | None = None    # raw log p(label | prompt), uncalibrated
    # calibrated label ranking only (see .calibration): the label prior pi(y) that was
    # divided out and the calibrated distribution q(y | x) whose argmax is ``answer``
    label_prior: list[float] | None = None
    calibrated_probs: list[float] | None = None

    def to_dict(self) -> dict:
        """For logs: everything but ``cached`` (usage counts cache hits; a log
        should read the same whether its answers came from the cache or not)."""
        d = asdict(self)
        d.pop("cached")
        for name in ("label_logprobs", "label_prior", "calibrated_probs"):
            if d[name] is None:
                d.pop(name)
        return d


class Task:
    """Base class; a family sets the class attributes and implements
    ``format_input``, ``parse_answer``, ``score`` and ``corpus_metrics``."""

    name: str = "task"
    family: str = "generic"
    instruction: str = ""
    labels: tuple[str, ...] | None = None      # closed label set, if any
    answer_mode: str = "generate"
    calibration: str = "none"                  # rank mode only: see .calibration
    gen_params: GenParams = GenParams(max_new_tokens=64)
    metric_names: tuple[str, ...] = ()
    data_file: str = ""                        # its JSONL file in the data folder (machinery.data)
    hub: dict[str, Any] = {}                   # its Hugging Face source, read by example_from_hub

    max_input_chars: int | None = None         # cut each input field to this many characters

    def __init__(self, *, answer_mode: str | None = None, instruction: str | None = None,
                 max_new_tokens: int | None = None, calibration: str | None = None,
                 max_input_chars: int | None = None, data_file: str | None = None,
                 stop_repeats: int | None = None):
        answer_mode = normalize_answer_mode(answer_mode)
        if answer_mode is not None:
            if answer_mode not in ANSWER_MODES:
                raise TaskError(f"unknown answer_mode {answer_mode!r}; use one of {ANSWER_MODES}")
            if answer_mode == "rank" and not self.labels:
                raise TaskError(f"task {self.name!r} has no label set, so answer_mode='rank' "
                                "is not available; use 'generate'")
            self.answer_mode = answer_mode
        if instruction is not None:
            self.instruction = instruction
        for name, value in (("max_new_tokens", max_new_tokens), ("stop_repeats", stop_repeats)):
            if value is not None:
                try:
                    self.gen_params = GenParams(**{**asdict(self.gen_params), name: value})
                except (TypeError, ValueError) as e:
                    raise TaskError(f"task option {name}={value!r}: {e}") from None
        if calibration is not None:
            if calibration not in calib.CALIBRATIONS:
                raise TaskError(f"unknown calibration {calibration!r}; use one of {calib.CALIBRATIONS}")
            if calibration != "none" and self.answer_mode != "rank":
                raise TaskError(f"calibration={calibration!r} applies to label ranking; "
                                f"task {self.name!r} is in answer_mode={self.answer_mode!r} "
                                "(pass answer_mode='rank')")
            self.calibration = calibration
        if max_input_chars is not None:
            if isinstance(max_input_chars, bool) or not isinstance(max_input_chars, int) \
                    or max_input_chars < 1:
                raise TaskError(f"max_input_chars must be a whole number of characters >= 1, "
                                f"got {max_input_chars!r}")
            self.max_input_chars = max_input_chars
        if data_file is not None:              # a family's own copy of its data (see data/README.md)
            self.data_file = data_file

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
        return generator_messages(self.instruction, self.format_input(self.fitted(example)),
                                  experience)

    def fitted(self, example: Example) -> Example:
        """``example`` with its input field cut to ``max_input_chars`` (from the
        end, at a word boundary where one is near), or unchanged."""
        n = self.max_input_chars
        if n is None or len(example.input) <= n:
            return example
        cut = example.input[:n]
        space = cut.rfind(" ")
        return replace(example, input=cut[:space] if space > n * 0.9 else cut)

    def requests(self, examples: Sequence[Example], experience: Experience | None = None):
        """The LLM requests ``predict`` sends (one per example)."""
        return [self._request(ex, experience) for ex in examples]

    def _request(self, example: Example, experience: Experience | None):
        if self.answer_mode == "rank":
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
        if self.answer_mode == "rank":
            # contextual calibration: the content-free prompts of each experience
            # go into the same (cached, batched) call as the examples
            groups = _group_by_experience(pairs)
            cf_reqs = [self._request(cf, pairs[idx[0]][1])
                       for idx in groups.values() for cf in self.content_free_examples()]
            with _naming_examples(reqs, examples):
                out = llm.loglikelihood(reqs + cf_reqs, role=role, progress=progress)
            out, cf_out = out[:len(reqs)], out[len(reqs):]
            priors = self._label_priors(groups, examples, out, cf_out)
            preds = []
            for i, (ex, s) in enumerate(zip(examples, out)):
                best, raw, prior, probs = calib.decide(s.logprobs, priors.get(i))
                label = self.labels[best]
                preds.append(Prediction(ex.id, label, label, float(self.score(label, ex)),
                                        s.cached, raw, prior, probs))
            return preds
        with _naming_examples(reqs, examples):
            out = llm.generate(reqs, role=role, progress=progress)
        preds = []
        for ex, c in zip(examples, out):
            ans = self.parse_answer(c.text)
            preds.append(Prediction(ex.id, c.text, ans, float(self.score(ans, ex)), c.cached))
        return preds

    def content_free_examples(self) -> list[Example]:
        """The content-free inputs of contextual calibration (none otherwise)."""
        if self.calibration != "contextual":
            return []
        return [Example(f"content_free_{i}", text, ("",))
                for i, text in enumerate(calib.CONTENT_FREE_INPUTS)]

    def _label_priors(self, groups, examples, out, cf_out) -> dict[int, list[float]]:
        """Pair index -> log pi(y) of its experience group (empty with no calibration).
        contextual: the group's content-free rows; batch: the group's distinct examples."""
        priors: dict[int, list[float]] = {}
        n_cf = len(self.content_free_examples())
        for g, idx in enumerate(groups.values()):
            if self.calibration == "contextual":
                rows = [s.logprobs for s in cf_out[g * n_cf:(g + 1) * n_cf]]
            elif self.calibration == "batch":
                first = {}
                for i in idx:
                    first.setdefault(examples[i].id, i)
                rows = [out[i].logprobs for i in first.values()]
            else:
                return {}
            prior = calib.log_prior(rows)
            priors.update((i, prior) for i in idx)
        return priors

    def evaluate_predictions(self, preds: Sequence[Prediction],
                             examples: Sequence[Example]) -> dict[str, float]:
        return self.corpus_metrics([p.answer for p in preds], examples)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "answer_mode": self.answer_mode,
                "calibration": self.calibration, "max_input_chars": self.max_input_chars,
                "labels": list(self.labels) if self.labels else None,
                "metrics": list(self.metric_names), "instruction": self.instruction,
                "data_file": self.data_file, "hub": dict(self.hub)}

    def __repr__(self):
        cal = "" if self.calibration == "none" else f", {self.calibration} calibration"
        return f"<Task {self.name} ({self.family}, {self.answer_mode}{cal})>"


@contextlib.contextmanager
def _naming_examples(reqs: list, examples: list[Example]):
    """Turn the model's context-window error into one line that names the
    example, its length and a ``max_input_chars`` that would make it fit."""
    try:
        yield
    except ContextWindowError as e:
        if e.request not in reqs:         # a content-free calibration prompt: as it is
            raise
        ex = examples[reqs.index(e.request)]
        over = e.tokens + e.reserve - e.window
        # characters per token of this example's input, to turn tokens into characters
        keep = int(len(ex.input) * (1 - over / max(e.tokens, 1)) * 0.9)
        fix = (f"set the task option max_input_chars={keep} (--task-option "
               f"max_input_chars={keep}) to cut inputs from the end" if keep > 0 else
               "the prompt is too long even without its input: shorten the instruction or rules")
        raise ContextWindowError(
            f"example {ex.id!r} does not fit the model's context window: its prompt is "
            f"{e.tokens:,} tokens (+ {e.reserve} after it) and the window is {e.window:,}; "
            f"use a shorter input, or {fix}", request=e.request, tokens=e.tokens,
            reserve=e.reserve, window=e.window) from None


def _group_by_experience(pairs) -> dict[tuple, list[int]]:
    """Pair indices grouped by the experience's rules (None and an empty
    experience render the same prompt, so they are one group), in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, exp) in enumerate(pairs):
        groups.setdefault(exp.rules if exp else (), []).append(i)
    return groups
