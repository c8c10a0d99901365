"""Machine translation: WMT23 general test directions and any FLORES-200 pair.

The generator gets the source sentence and an instruction that names both
languages in words ("Translate the following German text into English");
:meth:`Translation.parse_answer` keeps the translation and drops what chat
models wrap around it (a "Here is the translation:" line, a "Translation:"
or "English:" label, surrounding quotes, a trailing "Note: ..." paragraph).

Scores (:mod:`seo_lite.tasks.metrics`): sentence chrF / 100 per example -- smooth
enough that SEO's delta_E moves when one word improves; corpus BLEU and chrF.

Language codes: short ISO 639-1 codes (``de``, ``zh``) everywhere, FLORES-200
codes (``deu_Latn``) for FLORES columns; both are accepted for FLORES tasks.
``zh`` means Simplified Chinese (``zho_Hans``); ``zh-Hant`` is ``zho_Hant``.

Any other parallel corpus, in any pair of language codes, needs no code:
:class:`ParallelTranslation` (``translation_task``, ``get_task("translation", ...)``).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from typing import Any, Sequence

from .base import Example, Task, TaskError
from .metrics import bleu_tokenizer, corpus_bleu, corpus_chrf, sentence_chrf
from ..llm.base import GenParams
from ..llm.stopping import answer_end_rule

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
_SCRIPT_TOKENIZE = {"Hans": "zh", "Hant": "zh", "Hani": "zh", "Jpan": "ja", "Hang": "ko",
                    "Thai": "char", "Laoo": "char", "Khmr": "char", "Mymr": "char", "Tibt": "char"}


def resolve_flores_code(code: str) -> str:
    """A short code (``de``) or FLORES code (``deu_Latn``) -> the FLORES column name.
    FLORES-shaped codes outside our table are accepted for users of the full set."""
    code = code.strip()
    lowered = {k.lower(): k for k in LANGUAGES}
    if code.lower().replace("_", "-") in lowered:              # de, zh_Hant, zh-hant
        return LANGUAGES[lowered[code.lower().replace("_", "-")]][1]
    if _FLORES_CODE.match(code):
        return code
    raise TaskError(f"unknown language code {code!r}; use a short code "
                    f"({', '.join(sorted(LANGUAGES))}) or a FLORES-200 code "
                    f"({', '.join(sorted(FLORES_TO_SHORT))})")


def language_name(code: str) -> str:
    """English name of a code of any shape we know (``de``, ``deu_Latn``, ``fra``,
    ``zh-Hant``); the code itself when unknown."""
    if code in LANGUAGES:
        return LANGUAGES[code][0]
    if code in FLORES_TO_SHORT:
        return LANGUAGES[FLORES_TO_SHORT[code]][0]
    base = _THREE_LETTER.get(code.lower(), code.lower())
    return LANGUAGES[base][0] if base in LANGUAGES else code


# ISO 639-3 codes (and FLORES prefixes) of the languages above, and of a few more
# languages written without spaces between words
_THREE_LETTER = {flores.split("_")[0]: short for short, (_, flores) in LANGUAGES.items()}
_THREE_LETTER.update({"cmn": "zh", "yue": "zh", "wuu": "zh", "tha": "th", "lao": "lo",
                      "khm": "km", "mya": "my", "bod": "bo", "dzo": "dz"})
# languages (ISO 639-1) whose script puts no spaces between words, and no sacrebleu
# tokenizer of their own: BLEU counts character n-grams for them
_CHAR_LANGUAGES = {"th", "lo", "km", "my", "bo", "dz"}
_LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def bleu_tokenize_for(code: str) -> str:
    """sacrebleu's BLEU tokenizer for a target language code of any shape.

    ``zh`` (also ``zho``, ``cmn``, ``yue``, ``zh-Hant``, ``*_Hans``) -> ``"zh"``;
    ``ja`` -> ``"ja-mecab"`` when MeCab and its dictionary are installed
    (``pip install "sacrebleu[ja]"``), else ``"char"``; ``ko`` -> ``"ko-mecab"``
    likewise (``"sacrebleu[ko]"``), else ``"char"``; Thai, Lao, Khmer, Burmese,
    Tibetan, Dzongkha (and their FLORES scripts) -> ``"char"``; everything
    else -> sacrebleu's default ``"13a"``."""
    code = code.strip()
    if code in FLORES_TO_SHORT:
        return bleu_tokenizer(FLORES_TO_SHORT[code])
    if _FLORES_CODE.match(code):
        script = code.split("_")[1]
        if script in _SCRIPT_TOKENIZE:
            tok = _SCRIPT_TOKENIZE[script]
            return tok if tok == "char" else bleu_tokenizer(tok)
    parts = re.split(r"[-_]", code)
    base = parts[0].lower()
    base = _THREE_LETTER.get(base, base)
    for sub in parts[1:]:                       # a script subtag: sr-Latn, zh-Hant, ja-Jpan
        if sub.title() in _SCRIPT_TOKENIZE and base not in ("ja", "ko"):
            tok = _SCRIPT_TOKENIZE[sub.title()]
            return tok if tok == "char" else bleu_tokenizer(tok)
    if base in _CHAR_LANGUAGES:
        return "char"
    return bleu_tokenizer(base)


# -- answer parsing ------------------------------------------------------------------------
_PREAMBLE = re.compile(r"^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is|"
                       r"the translation|translation|translated text|output)\b.*[:：]\s*$",
                       re.IGNORECASE)
_NOTE = re.compile(r"^\(?\s*(?:note|notes|explanation|translation note|literal translation)\b",
                   re.IGNORECASE)
_QUOTES = [('"', '"'), ("“", "”"), ("„", "“"), ("«", "»"), ("「", "」"), ("『", "』"), ("'", "'"),
           ("‘", "’"), ("*", "*"), ("`", "`")]


@functools.lru_cache(maxsize=64)
def _label_re(labels: tuple[str, ...]) -> re.Pattern:
    """A label at the start of a line ("Translation:", "German:", "**Output:**")."""
    return re.compile(r"^\s*(?:\*\*)?(?:translation|translated text|target|output"
                      + "".join(f"|{re.escape(lb)}(?: translation)?" for lb in labels)
                      + r")\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*", re.IGNORECASE)


def _is_preamble(line: str, label_re: re.Pattern) -> bool:
    """A line the parser drops before the translation: "Here is the translation:", a bare label."""
    return bool(_PREAMBLE.match(line.strip()) or label_re.fullmatch(line.rstrip()))


def parse_translation(text: str | None, labels: Sequence[str] = ()) -> str:
    """The translation inside a model reply.  ``labels`` are extra line
    prefixes to strip (the target language's name, e.g. "German")."""
    if not text or not text.strip():
        return ""
    lines = [ln.rstrip() for ln in text.strip().splitlines() if not ln.strip().startswith("```")]
    label_re = _label_re(tuple(labels))
    while lines and not lines[0].strip():
        lines.pop(0)
    # a preamble line ("Here is the translation:") followed by the translation
    while len(lines) > 1 and _is_preamble(lines[0], label_re):
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


@answer_end_rule("translation")
def translation_end(text: str, *labels: str) -> int | None:
    """Where :func:`parse_translation` reads no more (``GenParams.answer_end``):
    at a complete blank line or "Note" line once the first paragraph began.
    Before it the parser drops blank lines, preamble lines and bare labels
    (:func:`_is_preamble`; a complete one is followed by a line, so it is
    dropped), and it ignores lines starting with ```; after it, it reads
    nothing.  The offset is the start of that line; None while it may go on."""
    label_re = _label_re(labels)
    started, pos = False, 0
    for line in text.splitlines(keepends=True):
        content = (line.splitlines() or [""])[0]
        if content == line:
            return None                                # the last line may still grow
        s = content.strip()
        if not s.startswith("```"):
            if not started:
                started = bool(s) and not _is_preamble(content, label_re)
            elif not s or _NOTE.match(s):
                return pos
        pos += len(line)
    return None


# -- the task ------------------------------------------------------------------------------
class Translation(Task):
    """Translate ``src`` -> ``tgt``; ``dataset`` is ``"wmt23"`` or ``"flores"``."""

    family = "translation"
    metric_names = ("bleu", "chrf")
    required_fields: tuple[str, ...] = ()

    def __init__(self, src: str, tgt: str, *, dataset: str = "wmt23",
                 bleu_tokenize: str | None = None, **options):
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
            max_new_tokens = 1024 if pair == "en-de" else 256
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
            max_new_tokens = 256
        else:
            raise TaskError(f"unknown translation dataset {dataset!r}; use 'wmt23' or 'flores'")
        self.dataset = dataset
        self.src_name, self.tgt_name = language_name(self.src_lang), language_name(self.tgt_lang)
        self._finish(max_new_tokens, bleu_tokenize or bleu_tokenize_for(
            self.tgt_col if dataset == "flores" else self.tgt_lang), options)

    # prompt and answer
    def format_input(self, example: Example) -> str:
        return f"{self.src_name}: {example.input}"

    def parse_answer(self, text: str) -> str:
        return parse_translation(text, labels=(self.tgt_name, self.tgt_lang))

    def _finish(self, max_new_tokens: int, bleu_tokenize: str, options: dict) -> None:
        """What both constructors end with, once the languages are set: the instruction,
        and generation that ends where :meth:`parse_answer` reads no more
        (:func:`translation_end`) or where a loop shows (``stop_repeats=4``: the
        embedded model repeats a phrase to the token limit in about a third of
        its FLORES replies; the task option ``stop_repeats=0`` turns it off)."""
        self.instruction = (f"Translate the following {self.src_name} text into {self.tgt_name}. "
                            f"Reply with the {self.tgt_name} translation only, nothing else.")
        self.bleu_tokenize = bleu_tokenize
        self.gen_params = GenParams(max_new_tokens=max_new_tokens,
                                    answer_end=("translation", self.tgt_name, self.tgt_lang),
                                    stop_repeats=4)
        Task.__init__(self, **options)

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
                "bleu_tokenize": self.bleu_tokenize}


# -- any parallel corpus, no subclassing ------------------------------------------------------
def _language(code, what: str) -> str:
    if not isinstance(code, str) or not _LANGUAGE_CODE.match(code.strip()):
        raise TaskError(f"{what} must be a language code such as 'en', 'fr', 'pt-BR', 'gsw' or "
                        f"'tha_Thai', got {code!r}")
    return code.strip()


class ParallelTranslation(Translation):
    """A translation task from any parallel JSONL file, no subclassing (also
    ``get_task("translation", ...)``; :func:`translation_task` is this class)::

        task = translation_task("my_corpus.jsonl", source_column="eng", target_column="fra",
                                source_lang="en", target_lang="fr")

    ``data_file`` is absolute or relative to the data folder (``SEO_LITE_DATA``
    / ``data_dir=``, else the shipped samples).  Each line is a JSON object
    holding the two columns (the target may be a list of references) and
    optionally an ``id`` (``id_column=``; without one, ids come from the
    text).  Language codes may be any ISO 639 code with optional subtags
    (``pt-BR``) or a FLORES code (``tha_Thai``); the instruction names known
    languages in English (``source_name=`` / ``target_name=`` to choose the
    words), and BLEU's tokenizer follows the target (:func:`bleu_tokenize_for`,
    or ``bleu_tokenize=``).  Further options: ``name``, ``max_new_tokens``,
    ``instruction``, ``answer_mode``.  In a config or on the command line the
    same task is ``task="translation"`` with these keywords in ``task_options``."""

    def __init__(self, data_file: str, *, source_column: str = "src", target_column: str = "ref",
                 source_lang: str, target_lang: str, name: str | None = None,
                 id_column: str = "id", source_name: str | None = None,
                 target_name: str | None = None, bleu_tokenize: str | None = None,
                 max_new_tokens: int = 256, **options):
        if not isinstance(data_file, (str, os.PathLike)) or not str(data_file).strip():
            raise TaskError(f"data_file must name a JSONL file (a path, absolute or relative to "
                            f"the data folder), got {data_file!r}")
        for what, col in (("source_column", source_column), ("target_column", target_column),
                          ("id_column", id_column)):
            if not isinstance(col, str) or not col:
                raise TaskError(f"{what} must be a column name (a non-empty string), got {col!r}")
        if source_column == target_column:
            raise TaskError(f"source_column and target_column are both {source_column!r}")
        self.src_lang = _language(source_lang, "source_lang")
        self.tgt_lang = _language(target_lang, "target_lang")
        if self.src_lang == self.tgt_lang:
            raise TaskError(f"source_lang and target_lang are both {self.src_lang!r}")
        self.dataset = "file"
        self.data_file = os.path.expanduser(os.fspath(data_file))
        self.src_col, self.tgt_col, self.id_column = source_column, target_column, id_column
        self.required_fields = (source_column, target_column)
        stem = os.path.splitext(os.path.basename(self.data_file))[0]
        self.name = name or f"{stem}:{self.src_lang}-{self.tgt_lang}"
        self.src_name = source_name or language_name(self.src_lang)
        self.tgt_name = target_name or language_name(self.tgt_lang)
        self._finish(max_new_tokens, bleu_tokenize or bleu_tokenize_for(self.tgt_lang), options)

    def example_from_row(self, row: dict) -> Example:
        src, ref = row[self.src_col], row[self.tgt_col]
        refs = [ref] if isinstance(ref, str) else ref
        if not isinstance(src, str) or not src.strip():
            raise ValueError(f"column '{self.src_col}' must be a non-empty string, got {src!r:.60}")
        if (not isinstance(refs, list) or not refs
                or not all(isinstance(r, str) and r.strip() for r in refs)):
            raise ValueError(f"column '{self.tgt_col}' must be a non-empty string (or a list of "
                             f"reference strings), got {ref!r:.60}")
        if self.id_column in row:
            ex_id = str(row[self.id_column])
        else:                    # no id column: one from the content (a repeated pair is a duplicate)
            digest = hashlib.sha1(f"{src}\t{refs[0]}".encode("utf-8")).hexdigest()[:12]
            ex_id = f"{os.path.splitext(os.path.basename(self.data_file))[0]}_{digest}"
        return Example(ex_id, src, tuple(refs), None,
                       {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source_column": self.src_col,
                "target_column": self.tgt_col}


translation_task = ParallelTranslation     # the name data/README.md uses


__all__ = ["Translation", "ParallelTranslation", "translation_task", "LANGUAGES",
           "WMT23_DIRECTIONS", "parse_translation", "resolve_flores_code", "language_name",
           "bleu_tokenize_for", "translation_end"]
