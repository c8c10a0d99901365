"""Text classification: SST-2 (sentiment), TREC (question type), AG News (topic).

Each class is verbalized as one lowercase word, and ``labels`` is that tuple.
Both answer modes of :class:`seo_lite.tasks.base.Task` work: in ``"generate"``
:meth:`Classification.parse_answer` finds the first label word or synonym in
the reply (whole words, any case); a reply without one parses to "" and scores 0.

Verbalizers.  SST-2: negative / positive.  TREC coarse classes (ABBR, ENTY,
DESC, HUM, LOC, NUM): abbreviation, entity, description, human, location,
number (the data's ``label_text`` says "numeric"; "number" is the plain noun
like the other five, and "numeric" is accepted as a synonym).  AG News (World,
Sports, Business, Sci/Tech): world, sports, business, technology -- one word
each, so that label ranking does not penalise a multi-token label.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from typing import Sequence

from .base import Example, Task, TaskError
from .metrics import accuracy, macro_f1
from ..llm.base import GenParams
from ..llm.stopping import answer_end_rule


@functools.lru_cache(maxsize=64)
def _label_pattern(words: tuple[str, ...]) -> re.Pattern:
    """Any of ``words`` as a whole word, case-insensitive; the longest first
    ("sci/tech" before "tech")."""
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])({alternation})(?![a-z0-9])", re.IGNORECASE)


@answer_end_rule("label")
def label_end(text: str, *words: str) -> int | None:
    """Where :meth:`Classification.parse_answer` reads no more
    (``GenParams.answer_end``): its first label word is complete -- a
    character that cannot continue the word follows it, and no longer word
    that starts there or before ("world news" after "world") can still
    complete.  The offset is the end of that word; None while it may go on."""
    m = _label_pattern(words).search(text)
    if m is None or m.end() == len(text):
        return None                                     # "pos" may become "positive"
    longest = max(len(w) for w in words)
    for start in range(max(0, len(text) - longest + 1), m.start() + 1):
        tail = text[start:].lower()
        if any(len(w) > len(tail) and w.startswith(tail) for w in words):
            return None
    return m.end()


class Classification(Task):
    """A closed label set; ``synonyms`` maps each label to extra words that mean it."""

    family = "classification"
    metric_names = ("accuracy", "macro_f1")
    gen_params = GenParams(max_new_tokens=12)
    labels: tuple[str, ...] = ()
    synonyms: dict[str, tuple[str, ...]] = {}
    input_label: str = "Text"
    required_fields: tuple[str, ...] = ("id", "text", "label")
    hub_id: str = ""                # Hub examples are <hub_id>_test_<row index>

    def __init__(self, **options):
        super().__init__(**options)
        self._word_to_label = {w.lower(): label for label in self.labels
                               for w in (label, *self.synonyms.get(label, ()))}
        self._pattern = _label_pattern(tuple(self._word_to_label))
        # generation ends where parse_answer reads no more (label_end)
        self.gen_params = dataclasses.replace(self.gen_params,
                                              answer_end=("label", *self._word_to_label))

    # prompt and answer
    def format_input(self, example: Example) -> str:
        return f"{self.input_label}: {example.input}"

    def parse_answer(self, text: str) -> str:
        """The first label (or synonym) mentioned in ``text``; "" if none."""
        m = self._pattern.search(text or "")
        return self._word_to_label[m.group(1).lower()] if m else ""

    # metrics
    def score(self, answer: str, example: Example) -> float:
        return float(answer.strip().lower() == example.gold)

    def corpus_metrics(self, answers: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        preds = [a.strip().lower() for a in answers]        # accuracy() checks the two lengths
        golds = [ex.gold for ex in examples]
        n = len(examples)
        return {"accuracy": accuracy(preds, golds), "macro_f1": macro_f1(preds, golds, self.labels),
                "score": (sum(p == g for p, g in zip(preds, golds)) / n) if n else 0.0}

    # data
    def label_of(self, row: dict) -> str:
        """The verbalized gold label of a local JSONL row."""
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(self.labels):
            raise ValueError(f"'label' must be an integer 0..{len(self.labels) - 1}, got {label!r}")
        return self.labels[label]

    def example_from_row(self, row: dict) -> Example:
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("'text' must be a non-empty string")
        return Example(str(row["id"]), text, (self.label_of(row),))

    def example_from_hub(self, row: dict, index: int) -> Example:
        return Example(f"{self.hub_id}_test_{index}", row["text"], (self.labels[int(row["label"])],))


class SST2(Classification):
    name = "sst2"
    labels = ("negative", "positive")
    synonyms = {"negative": ("neg",), "positive": ("pos",)}
    instruction = ("Classify the sentiment of the movie review as positive or negative. "
                   "Reply with one word: positive or negative.")
    input_label = "Review"
    data_file = "sst2_test_300.jsonl"
    hub = {"path": "SetFit/sst2", "split": "test"}         # text, label (0 neg, 1 pos)
    hub_id = "sst2"


TREC_COARSE = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")   # the dataset's class order


class TREC(Classification):
    name = "trec"
    labels = ("abbreviation", "entity", "description", "human", "location", "number")
    synonyms = {"abbreviation": ("abbr", "acronym", "abbreviations"),
                "entity": ("entities", "enty"),
                "description": ("desc", "definition", "descriptive"),
                "human": ("person", "people", "hum"),
                "location": ("place", "loc", "locations"),
                "number": ("numeric", "numerical", "num", "quantity")}
    instruction = ("Classify the question by the type of answer it asks for: abbreviation, "
                   "entity, description, human, location or number. "
                   "Reply with one word from that list.")
    input_label = "Question"
    data_file = "trec_test_300.jsonl"
    required_fields = ("id", "text", "label_coarse")
    # CogComp/trec: text, coarse_label (class index in TREC_COARSE order), fine_label (0..49).
    # Its main branch is still a loading script (trec.py), which datasets >= 4 refuses and
    # 3.x runs only with trust_remote_code; the Hub's Parquet conversion of it loads anywhere.
    hub = {"path": "CogComp/trec", "split": "test", "revision": "refs/convert/parquet"}

    def label_of(self, row: dict) -> str:
        code = row["label_coarse"]
        if code not in TREC_COARSE:
            raise ValueError(f"'label_coarse' must be one of {', '.join(TREC_COARSE)}, got {code!r}")
        return self.labels[TREC_COARSE.index(code)]

    def example_from_hub(self, row: dict, index: int) -> Example:
        return Example(f"trec_test_{index}", row["text"], (self.labels[int(row["coarse_label"])],),
                       None, {"fine_label": row.get("fine_label")})


class AGNews(Classification):
    name = "ag_news"
    labels = ("world", "sports", "business", "technology")
    synonyms = {"world": ("world news", "international"),
                "sports": ("sport",),
                "business": ("economy", "economics", "finance"),
                "technology": ("sci/tech", "science/technology", "science", "tech")}
    instruction = ("Classify the news article by topic: world, sports, business or technology. "
                   "Reply with one word from that list.")
    input_label = "Article"
    data_file = "ag_news_test_300.jsonl"
    # fancyzhx/ag_news: text, label (0 World, 1 Sports, 2 Business, 3 Sci/Tech)
    hub = {"path": "fancyzhx/ag_news", "split": "test"}
    hub_id = "agnews"


# -- your own labels, no subclassing -----------------------------------------------------------
class LabelledTexts(Classification):
    """A classification task from your own JSONL file and label set, no subclassing
    (:func:`classification_task` is this class)::

        task = classification_task("tickets.jsonl", labels=["bug", "feature", "question"])

    ``data_file`` is absolute or relative to the data folder.  Each line holds
    a text (``text_column``) and its label (``label_column``): a label word, in
    any case, or its index in ``labels``; an ``id`` is optional (``id_column=``;
    without one, ids come from the text).  Labels are lowercased; label ranking
    (``answer_mode="rank"``) works with them as with the built-in tasks.
    Further options: ``name``, ``instruction``, ``synonyms`` (label -> extra
    words the parser accepts), ``input_label`` (default "Text"), ``answer_mode``,
    ``max_new_tokens``.  In a config or on the command line the same task is
    ``task="classification"`` with these keywords in ``task_options``."""

    def __init__(self, data_file: str, *, labels: Sequence[str], text_column: str = "text",
                 label_column: str = "label", id_column: str = "id", name: str | None = None,
                 synonyms: dict[str, Sequence[str]] | None = None, input_label: str = "Text",
                 **options):
        if not isinstance(data_file, (str, os.PathLike)) or not str(data_file).strip():
            raise TaskError(f"data_file must name a JSONL file (a path, absolute or relative to "
                            f"the data folder), got {data_file!r}")
        if isinstance(labels, str) or not labels or not all(isinstance(x, str) and x.strip()
                                                            for x in labels):
            raise TaskError(f"labels must be a list of two or more label words, got {labels!r}")
        words = tuple(" ".join(x.split()).lower() for x in labels)
        if len(words) < 2 or len(set(words)) != len(words):
            raise TaskError(f"labels must be two or more different words, got {list(labels)!r}")
        for what, col in (("text_column", text_column), ("label_column", label_column),
                          ("id_column", id_column)):
            if not isinstance(col, str) or not col:
                raise TaskError(f"{what} must be a column name (a non-empty string), got {col!r}")
        self.labels = words
        self.synonyms = {k.lower(): tuple(v) for k, v in (synonyms or {}).items()}
        unknown = sorted(set(self.synonyms) - set(words))
        if unknown:
            raise TaskError(f"synonyms name labels that are not in labels: {', '.join(unknown)}")
        self.text_column, self.label_column, self.id_column = text_column, label_column, id_column
        self.required_fields = (text_column, label_column)
        self.input_label = input_label
        stem = os.path.splitext(os.path.basename(os.fspath(data_file)))[0]
        self.name = name or stem
        self.instruction = (f"Classify the text as one of: {', '.join(words)}. "
                            "Reply with the label only.")
        super().__init__(data_file=os.path.expanduser(os.fspath(data_file)), **options)

    def label_of(self, row: dict) -> str:
        """A label word (any case) or its index in ``labels``."""
        label = row[self.label_column]
        if isinstance(label, str) and " ".join(label.split()).lower() in self.labels:
            return " ".join(label.split()).lower()
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.labels):
            return self.labels[label]
        raise ValueError(f"column '{self.label_column}' must be one of {', '.join(self.labels)} "
                         f"(or its index 0..{len(self.labels) - 1}), got {label!r:.60}")

    def example_from_row(self, row: dict) -> Example:
        text = row[self.text_column]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"column '{self.text_column}' must be a non-empty string")
        if self.id_column in row:
            ex_id = str(row[self.id_column])
        else:                     # no id column: one from the content (a repeated text is a duplicate)
            stem = os.path.splitext(os.path.basename(self.data_file))[0]
            ex_id = f"{stem}_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"
        return Example(ex_id, text, (self.label_of(row),))


classification_task = LabelledTexts     # the name data/README.md uses


__all__ = ["Classification", "SST2", "TREC", "AGNews", "TREC_COARSE", "LabelledTexts",
           "classification_task", "label_end"]
