"""Multi-hop question answering: HotpotQA (with its 10 paragraphs, or closed
book) and 2WikiMultihopQA (closed book).

The generator reads a question (and, in HotpotQA's distractor setting, two
gold paragraphs hidden among eight distractors, rendered as ``Title: text``
blocks) and must reply with a short answer.  Models rarely reply with the
bare answer, so :meth:`MultiHopQA.parse_answer` digs it out:

1. a line that starts with ``Answer:`` wins (or the line below a bare
   ``Answer:``); else the text after "the answer is"; else the first
   non-empty line;
2. keep its first sentence (without cutting "St. Louis" or "J. K. Rowling");
3. a leading "Yes, ..." / "No, ..." becomes "yes" / "no";
4. strip quotes, Markdown emphasis and trailing punctuation.

The per-example score is token F1 (or exact match, ``example_metric="em"``)
against the best of the gold answer and its aliases; the corpus metrics are
EM and F1 in percent (see :mod:`seo_lite.tasks.metrics`).
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from .base import Example, Task, TaskError, row_answers
from .metrics import best_over_aliases, exact_match, token_f1
from ..llm.base import GenParams
from ..llm.stopping import answer_end_rule

EXAMPLE_METRICS = ("f1", "em")

INSTRUCTION_CLOSED_BOOK = (
    "Answer the question. Reply with the short answer only: a name, a date, a number, "
    "a short phrase, or yes/no. Do not explain.")
INSTRUCTION_WITH_CONTEXT = (
    "Answer the question using the paragraphs. Reply with the short answer only: a name, "
    "a date, a number, a short phrase, or yes/no. Do not explain.")

# -- answer parsing ------------------------------------------------------------------------
_ANSWER_LINE = re.compile(r"^[\s*#>_-]*(?:final\s+|short\s+)?answer\s*\**\s*[:：]\s*(?P<a>.*)$",
                          re.IGNORECASE)
_ANSWER_IS = re.compile(r"\banswer\s+(?:is|would\s+be|will\s+be)\s*:?\s*(?P<a>[^\n]+)",
                        re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:a|answer)\s*[:：]\s*", re.IGNORECASE)
_YES_NO = re.compile(r"^(yes|no)\b(?=\s*[,.;:!]|\s*$)", re.IGNORECASE)
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "mt", "ft", "vs", "etc", "inc",
                  "co", "ltd", "no", "gen", "col", "lt", "sgt", "capt", "prof", "rev", "fr",
                  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                  "dec", "approx", "est", "e.g", "i.e"}
_BOUNDARY = re.compile(r"[.!?](?=\s+[\"'“A-Z0-9])")
_WRAPPERS = "\"'“”‘’`*_«»「」『』"


def first_sentence(text: str) -> str:
    """The text up to the first sentence end, where a period after an
    abbreviation ("St.") or an initial ("J.") is not an end."""
    for m in _BOUNDARY.finditer(text):
        if text[m.start()] == ".":
            word = text[:m.start()].split()[-1] if text[:m.start()].split() else ""
            word = word.strip(_WRAPPERS + "(").lower()
            if len(word) <= 1 or word in _ABBREVIATIONS or "." in word:
                continue
        return text[:m.start()]
    return text


def clean_short_answer(text: str) -> str:
    """Strip wrappers (quotes, ``**bold**``), a leading "A:" and trailing punctuation."""
    prev = None
    while prev != text:
        prev = text
        text = _PREFIX.sub("", text.strip())
        text = text.strip().strip(_WRAPPERS).strip().rstrip(".,;:!?").strip()
    return text


def parse_short_answer(text: str | None) -> str:
    """The short answer inside a model reply ("" when there is none)."""
    if not text or not text.strip():
        return ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    candidate = None
    for i, ln in enumerate(lines):
        m = _ANSWER_LINE.match(ln)
        if m and m.group("a").strip(" *"):
            candidate = m.group("a")
            break
        if m and i + 1 < len(lines):                 # "Answer:" alone, the answer below it
            candidate = lines[i + 1]
            break
    if candidate is None:
        m = _ANSWER_IS.search(text)
        candidate = m.group("a") if m else lines[0]
    candidate = clean_short_answer(candidate)
    yn = _YES_NO.match(candidate)
    if yn:
        return yn.group(1).lower()
    return clean_short_answer(first_sentence(candidate))


@answer_end_rule("short_answer")
def short_answer_end(text: str) -> int | None:
    """Where :func:`parse_short_answer` reads no more (``GenParams.answer_end``):
    after its first complete "Answer: ..." line, or the complete line below a
    bare "Answer:".  The first such line wins whatever follows; before one,
    any later line could still be it, so the reply goes on.  The offset is
    the end of that line; None while it may go on."""
    pos, bare_answer = 0, False
    for line in text.splitlines(keepends=True):
        content = (line.splitlines() or [""])[0]
        if content == line:
            return None                                 # the last line may still grow
        pos += len(line)
        s = content.strip()
        if not s:
            continue
        m = _ANSWER_LINE.match(s)
        if bare_answer or (m and m.group("a").strip(" *")):
            return pos
        bare_answer = m is not None
    return None


# -- the task ------------------------------------------------------------------------------
def render_paragraphs(titles: Sequence[str], sentences: Sequence[Sequence[str]]) -> str:
    """HotpotQA context as ``Title: sentences`` blocks, one per paragraph."""
    if len(titles) != len(sentences):
        raise ValueError(f"context has {len(titles)} titles but {len(sentences)} paragraphs")
    return "\n\n".join(f"{t}: {''.join(s).strip()}" for t, s in zip(titles, sentences))


class MultiHopQA(Task):
    """Short-answer QA scored by token F1 (or EM) against the best alias."""

    family = "multihop_qa"
    metric_names = ("em", "f1")
    gen_params = GenParams(max_new_tokens=32, answer_end=("short_answer",))
    with_context: bool = False
    required_fields: tuple[str, ...] = ("id", "question", "answers")

    def __init__(self, *, example_metric: str = "f1", **options):
        if example_metric not in EXAMPLE_METRICS:
            raise TaskError(f"unknown example_metric {example_metric!r}; use one of {EXAMPLE_METRICS}")
        self.instruction = INSTRUCTION_WITH_CONTEXT if self.with_context else INSTRUCTION_CLOSED_BOOK
        super().__init__(**options)
        self.example_metric = example_metric

    # prompt and answer
    def format_input(self, example: Example) -> str:
        question = f"Question: {example.input}"
        if self.with_context and example.context:
            return f"Paragraphs:\n{example.context}\n\n{question}"
        return question

    def parse_answer(self, text: str) -> str:
        return parse_short_answer(text)

    # metrics
    def score(self, answer: str, example: Example) -> float:
        metric = token_f1 if self.example_metric == "f1" else exact_match
        return best_over_aliases(metric, answer, example.answers)

    def corpus_metrics(self, answers: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        if len(answers) != len(examples):
            raise ValueError(f"{len(answers)} answers for {len(examples)} examples")
        n = len(examples)
        em = [best_over_aliases(exact_match, a, ex.answers) for a, ex in zip(answers, examples)]
        f1 = [best_over_aliases(token_f1, a, ex.answers) for a, ex in zip(answers, examples)]
        scores = em if self.example_metric == "em" else f1
        mean = (lambda xs: sum(xs) / n) if n else (lambda xs: 0.0)
        return {"em": 100 * mean(em), "f1": 100 * mean(f1), "score": mean(scores)}

    # data: local JSONL rows and Hub rows onto the common schema
    def example_from_row(self, row: dict) -> Example:
        answers = row_answers(row)
        meta = {k: row[k] for k in ("type", "level") if k in row}
        return Example(str(row["id"]), str(row["question"]), answers, None, meta)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "example_metric": self.example_metric}


class HotpotQADistractor(MultiHopQA):
    """HotpotQA, distractor setting: the question with its 10 paragraphs."""

    name = "hotpotqa"
    with_context = True
    data_file = "hotpotqa_distractor_dev_100.jsonl"
    required_fields = ("id", "question", "answers", "context")
    hub = {"path": "hotpotqa/hotpot_qa", "name": "distractor", "split": "validation"}

    def example_from_row(self, row: dict) -> Example:
        ex = super().example_from_row(row)
        ctx = row["context"]
        if not isinstance(ctx, dict) or "title" not in ctx or "sentences" not in ctx:
            raise ValueError("'context' must be an object with 'title' and 'sentences' lists")
        return Example(ex.id, ex.input, ex.answers,
                       render_paragraphs(ctx["title"], ctx["sentences"]), ex.meta)

    def example_from_hub(self, row: dict, index: int) -> Example:
        ctx = row["context"]
        return Example(str(row["id"]), row["question"], (row["answer"],),
                       render_paragraphs(ctx["title"], ctx["sentences"]),
                       {"type": row.get("type"), "level": row.get("level")})


class HotpotQAClosedBook(MultiHopQA):
    """HotpotQA questions without paragraphs: the model answers from memory."""

    name = "hotpotqa_closedbook"
    data_file = "hotpotqa_dev_closedbook_300.jsonl"
    hub = {"path": "hotpotqa/hotpot_qa", "name": "distractor", "split": "validation"}

    def example_from_hub(self, row: dict, index: int) -> Example:
        return Example(f"hotpot_dev_{index}", row["question"], (row["answer"],), None,
                       {"type": row.get("type"), "level": row.get("level")})


class TwoWikiMultihopQA(MultiHopQA):
    """2WikiMultihopQA, closed book, with answer aliases."""

    name = "2wikimultihopqa"
    data_file = "2wikimultihopqa_dev_closedbook_300.jsonl"
    # FlashRAG's copy of the dev set (answers with aliases, as in our sample)
    hub = {"path": "RUC-NLPIR/FlashRAG_datasets",
           "data_files": {"dev": "2wikimultihopqa/dev.jsonl"}, "split": "dev"}

    def example_from_hub(self, row: dict, index: int) -> Example:
        return Example(f"2wiki_dev_{index}", row["question"], tuple(row["golden_answers"]))


__all__ = ["MultiHopQA", "HotpotQADistractor", "HotpotQAClosedBook", "TwoWikiMultihopQA",
           "parse_short_answer", "short_answer_end", "first_sentence", "render_paragraphs"]
