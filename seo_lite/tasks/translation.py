"""Machine translation: WMT23 general test directions and any FLORES-200 pair.

The generator gets the source sentence and an instruction that names both
languages in words ("Translate the following German text into English");
:meth:`Translation.parse_answer` keeps the translation and drops what chat
models wrap around it (a "Here is the translation:" line, a "Translation:"
or "English:" label, surrounding quotes, a trailing "Note: ..." paragraph).

Scores (see :mod:`seo_lite.tasks.metrics`): the per-example score is sentence
chrF / 100 -- smooth enough that SEO's delta_E moves when one word improves;
the corpus metrics are BLEU (with the tokenizer the target language needs:
``zh``, ``ja-mecab`` or ``char``, ``13a``) and chrF.

Language codes: short ISO 639-1 codes (``de``, ``zh``) everywhere, FLORES-200
codes (``deu_Latn``) for FLORES columns; both are accepted for FLORES tasks.
``zh`` means Simplified Chinese (``zho_Hans``); ``zh-Hant`` is ``zho_Hant``.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from .base import Example, Task, TaskError
from .metrics import bleu_tokenizer, corpus_bleu, corpus_chrf, sentence_chrf
from ..llm.base import GenParams

# short code: (English name, FLORES-200 code) -- the columns of our FLORES sample
LANGUAGES: dict[str, tuple[str, str]] = {
    "ar": ("Arabic", "arb_Arab"), "cs": ("Czech", "ces_Latn"), "de": ("German", "deu_Latn"),
    "en": ("English", "eng_Latn"), "es": ("Spanish", "spa_Latn"), "fr": ("French", "fra_Latn"),
    "hi": ("Hindi", "hin_Deva"), "is": ("Icelandic", "isl_Latn"), "it": ("Italian", "ita_Latn"),
    "ja": ("Japanese", "jpn_Jpan"), "ko": ("Korean", "kor_Hang"), "pt": ("Portuguese", "por_Latn"),
    "ru": ("Russian", "rus_Cyrl"), "sw": ("Swahili", "swh_Latn"), "tr": ("Turkish", "tur_Latn"),
    "uk": ("Ukrainian", "ukr_Cyrl"), "zh": ("Chinese", "zho_Hans"),
    "zh-Hant": ("Traditional Chinese", "zho_Hant"),
}
FLORES_TO_SHORT = {flores: short for short, (_, flores) in LANGUAGES.items()}
WMT23_DIRECTIONS = ("de-en", "en-cs", "en-de", "en-ja", "en-ru", "en-zh", "ja-en", "zh-en")
WMT23_FILE = "wmt23_general_{pair}_200.jsonl"
FLORES_FILE = "flores200_devtest_multiparallel_200.jsonl"
_FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
# scripts written without spaces between words (for FLORES codes outside LANGUAGES)
_SCRIPT_TOKENIZE = {"Hans": "zh", "Hant": "zh", "Jpan": "ja", "Hang": "ko", "Thai": "char",
                    "Laoo": "char", "Khmr": "char", "Mymr": "char", "Tibt": "char"}


def valid_language_codes() -> list[str]:
    return sorted(LANGUAGES) + sorted(FLORES_TO_SHORT)


def resolve_flores_code(code: str) -> str:
    """A short code (``de``) or FLORES code (``deu_Latn``) -> the FLORES column name.
    FLORES-shaped codes outside our table are accepted for users of the full set."""
    code = code.strip()
    lowered = {k.lower(): k for k in LANGUAGES}
    if code.lower() in lowered:
        return LANGUAGES[lowered[code.lower()]][1]
    if code.lower().replace("_", "-") in lowered:              # zh_Hant, zh-hant
        return LANGUAGES[lowered[code.lower().replace("_", "-")]][1]
    if _FLORES_CODE.match(code):
        return code
    raise TaskError(f"unknown language code {code!r}; use a short code "
                    f"({', '.join(sorted(LANGUAGES))}) or a FLORES-200 code "
                    f"({', '.join(sorted(FLORES_TO_SHORT))})")


def language_name(code: str) -> str:
    """English name of a short or FLORES code (the code itself when unknown)."""
    if code in LANGUAGES:
        return LANGUAGES[code][0]
    if code in FLORES_TO_SHORT:
        return LANGUAGES[FLORES_TO_SHORT[code]][0]
    return code


def _bleu_tokenize_for(code: str) -> str:
    if code in FLORES_TO_SHORT:
        code = FLORES_TO_SHORT[code]
    elif _FLORES_CODE.match(code):
        script = code.split("_")[1]
        if script in _SCRIPT_TOKENIZE:
            tok = _SCRIPT_TOKENIZE[script]
            return tok if tok == "char" else bleu_tokenizer(tok)
        return "13a"
    return bleu_tokenizer(code)


# -- answer parsing ------------------------------------------------------------------------
_PREAMBLE = re.compile(r"^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is|"
                       r"the translation|translation|translated text|output)\b.*[:：]\s*$",
                       re.IGNORECASE)
_NOTE = re.compile(r"^\(?\s*(?:note|notes|explanation|translation note|literal translation)\b",
                   re.IGNORECASE)
_QUOTES = [('"', '"'), ("“", "”"), ("„", "“"), ("«", "»"), ("「", "」"), ("『", "』"), ("'", "'"),
           ("‘", "’"), ("*", "*"), ("`", "`")]


def parse_translation(text: str | None, labels: Sequence[str] = ()) -> str:
    """The translation inside a model reply.  ``labels`` are extra line
    prefixes to strip (the target language's name, e.g. "German")."""
    if not text or not text.strip():
        return ""
    lines = [ln.rstrip() for ln in text.strip().splitlines() if not ln.strip().startswith("```")]
    label_re = re.compile(r"^\s*(?:\*\*)?(?:translation|translated text|target|output"
                          + "".join(f"|{re.escape(lb)}(?: translation)?" for lb in labels)
                          + r")\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*", re.IGNORECASE)
    while lines and not lines[0].strip():
        lines.pop(0)
    # a preamble line ("Here is the translation:") followed by the translation
    while len(lines) > 1 and (_PREAMBLE.match(lines[0].strip()) or label_re.fullmatch(lines[0])):
        lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    # the first paragraph, up to a note
    kept = []
    for ln in lines:
        if not ln.strip():
            if kept:
                break
            continue
        if kept and _NOTE.match(ln.strip()):
            break
        kept.append(ln.strip())
    out = " ".join(kept)
    out = label_re.sub("", out, count=1).strip()
    changed = True
    while changed and len(out) >= 2:
        changed = False
        for left, right in _QUOTES:
            if out.startswith(left) and out.endswith(right) and len(out) > len(left) + len(right):
                inner = out[len(left):-len(right)]
                if left not in inner and right not in inner:    # not '"a" and "b"'
                    out, changed = inner.strip(), True
    return out


# -- the task ------------------------------------------------------------------------------
class Translation(Task):
    """Translate ``src`` -> ``tgt``; ``dataset`` is ``"wmt23"`` or ``"flores"``."""

    family = "translation"
    metric_names = ("bleu", "chrf")
    primary_metric = "chrf"
    required_fields: tuple[str, ...] = ()
    hub: dict[str, Any] = {}

    def __init__(self, src: str, tgt: str, *, dataset: str = "wmt23",
                 bleu_tokenize: str | None = None, data_file: str | None = None, **options):
        if dataset == "wmt23":
            pair = f"{src}-{tgt}"
            if pair not in WMT23_DIRECTIONS:
                raise TaskError(f"WMT23 has no direction {pair!r} here; available: "
                                f"{', '.join(WMT23_DIRECTIONS)}")
            self.src_lang, self.tgt_lang = src, tgt
            self.src_col, self.tgt_col = "src", "ref"
            self.name = f"wmt23:{pair}"
            self.data_file = WMT23_FILE.format(pair=pair)
            self.required_fields = ("id", "src", "ref")
            self.hub = {"path": "haoranxu/WMT23-Test", "name": pair, "split": "test"}
            # en-de rows are whole paragraphs (up to ~700 tokens)
            self.gen_params = GenParams(max_new_tokens=1024 if pair == "en-de" else 256)
        elif dataset == "flores":
            self.src_col, self.tgt_col = resolve_flores_code(src), resolve_flores_code(tgt)
            if self.src_col == self.tgt_col:
                raise TaskError(f"source and target are the same language ({self.src_col})")
            self.src_lang = FLORES_TO_SHORT.get(self.src_col, self.src_col)
            self.tgt_lang = FLORES_TO_SHORT.get(self.tgt_col, self.tgt_col)
            self.name = f"flores:{self.src_lang}-{self.tgt_lang}"
            self.data_file = FLORES_FILE
            self.required_fields = ("id", self.src_col, self.tgt_col)
            self.hub = {"path": "facebook/flores", "join": [self.src_col, self.tgt_col],
                        "split": "devtest"}
            self.gen_params = GenParams(max_new_tokens=256)
        else:
            raise TaskError(f"unknown translation dataset {dataset!r}; use 'wmt23' or 'flores'")
        self.dataset = dataset
        self.src_name, self.tgt_name = language_name(self.src_lang), language_name(self.tgt_lang)
        self.instruction = (f"Translate the following {self.src_name} text into {self.tgt_name}. "
                            f"Reply with the {self.tgt_name} translation only, nothing else.")
        self.bleu_tokenize = bleu_tokenize or _bleu_tokenize_for(self.tgt_col if dataset == "flores"
                                                                 else self.tgt_lang)
        if data_file is not None:
            self.data_file = data_file
        super().__init__(**options)

    # prompt and answer
    def format_input(self, example: Example) -> str:
        return f"{self.src_name}: {example.input}"

    def parse_answer(self, text: str) -> str:
        return parse_translation(text, labels=(self.tgt_name, self.tgt_lang))

    # metrics
    def score(self, answer: str, example: Example) -> float:
        return sentence_chrf(answer, example.answers) / 100.0

    def corpus_metrics(self, answers: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        if len(answers) != len(examples):
            raise ValueError(f"{len(answers)} answers for {len(examples)} examples")
        if not examples:
            return {"bleu": 0.0, "chrf": 0.0, "score": 0.0}
        refs = [ex.gold for ex in examples]
        scores = [self.score(a, ex) for a, ex in zip(answers, examples)]
        return {"bleu": corpus_bleu(answers, refs, tokenize=self.bleu_tokenize),
                "chrf": corpus_chrf(answers, refs), "score": sum(scores) / len(scores)}

    # data
    def example_from_row(self, row: dict) -> Example:
        src, ref = row[self.src_col], row[self.tgt_col]
        if not isinstance(src, str) or not isinstance(ref, str) or not src.strip() or not ref.strip():
            raise ValueError(f"'{self.src_col}' and '{self.tgt_col}' must be non-empty strings")
        if self.dataset == "wmt23":
            found = (row.get("src_lang", self.src_lang), row.get("tgt_lang", self.tgt_lang))
            if found != (self.src_lang, self.tgt_lang):
                raise ValueError(f"row is {found[0]}-{found[1]} but the task is "
                                 f"{self.src_lang}-{self.tgt_lang}")
        return Example(str(row["id"]), src, (ref,), None,
                       {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang})

    def example_from_hub(self, row: dict, index: int) -> Example:
        meta = {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang}
        if self.dataset == "wmt23":
            pair = row[f"{self.src_lang}-{self.tgt_lang}"]
            return Example(f"wmt23_{self.src_lang}-{self.tgt_lang}_{index}",
                           pair[self.src_lang], (pair[self.tgt_lang],), None, meta)
        return Example(f"flores200_devtest_{index}", row[self.src_col]["sentence"],
                       (row[self.tgt_col]["sentence"],), None, meta)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
                "bleu_tokenize": self.bleu_tokenize, "data_file": self.data_file,
                "hub": dict(self.hub)}


__all__ = ["Translation", "LANGUAGES", "WMT23_DIRECTIONS", "parse_translation",
           "resolve_flores_code", "language_name", "valid_language_codes"]
