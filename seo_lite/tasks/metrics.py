"""The field's standard metrics, one function each.

SEO needs a per-example score in [0, 1], because its performance effect is a
difference of two of them,

    delta_E(x) = score(answer with E, x) - score(answer without E, x),

and reports need the corpus numbers every paper prints.  Both live here:

* **QA** -- exact match and token F1 after SQuAD normalisation, each the best
  over the gold answer and its aliases:

      F1 = 2 P R / (P + R),  P = |common tokens| / |predicted tokens|,
                             R = |common tokens| / |gold tokens|;

* **translation** -- corpus BLEU (tokenized per target language:
  :func:`bleu_tokenizer`) and chrF through sacrebleu; the per-example score
  is sentence chrF / 100;
* **classification** -- accuracy and macro-F1 over the task's label set (an
  unparseable answer is simply wrong: it lowers the recall of its gold class).

Corpus metrics are on the 0-100 scale, as papers print them.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Callable, Iterable, Sequence

from sacrebleu.metrics import BLEU, CHRF

# -- QA: SQuAD-style EM and token F1 -------------------------------------------------------
_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, strip punctuation and articles, squeeze spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:                      # an empty side matches only an empty side
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over_aliases(metric: Callable[[str, str], float], prediction: str,
                      golds: Iterable[str]) -> float:
    """The metric against the closest of the acceptable answers."""
    return max((metric(prediction, g) for g in golds), default=0.0)


# -- translation: BLEU and chrF through sacrebleu ------------------------------------------
def _tokenizer_works(name: str) -> bool:
    try:
        BLEU(tokenize=name).corpus_score(["テスト 한국어"], [["テスト 한국어"]])
        return True
    except Exception:                            # missing optional package (MeCab, dictionaries)
        return False


@lru_cache(maxsize=None)
def bleu_tokenizer(lang: str) -> str:
    """sacrebleu's BLEU tokenizer for a short ISO code (``"zh"``); codes of any
    shape: :func:`seo_lite.tasks.translation.bleu_tokenize_for`, which says what each gets."""
    base = lang.split("-")[0].split("_")[0].lower()
    if base == "zh":
        return "zh"
    if base in ("ja", "ko"):
        mecab = f"{base}-mecab"
        return mecab if _tokenizer_works(mecab) else "char"
    return "13a"


@lru_cache(maxsize=None)
def _bleu(tokenize: str) -> BLEU:
    return BLEU(tokenize=tokenize)


@lru_cache(maxsize=None)
def _chrf() -> CHRF:
    return CHRF()


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], *,
                tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100), one reference per segment."""
    _same_length(hypotheses, references)
    return float(_bleu(tokenize).corpus_score(list(hypotheses), [list(references)]).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100), one reference per segment."""
    _same_length(hypotheses, references)
    return float(_chrf().corpus_score(list(hypotheses), [list(references)]).score)


def sentence_chrf(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence chrF (0-100) against one or more references."""
    return float(_chrf().sentence_score(hypothesis, list(references)).score)


def _same_length(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")


# -- classification: accuracy and macro-F1 -------------------------------------------------
def accuracy(predictions: Sequence[str], golds: Sequence[str]) -> float:
    """Share of exact label matches, 0-100."""
    _same_length(predictions, golds)
    if not golds:
        return 0.0
    return 100.0 * sum(p == g for p, g in zip(predictions, golds)) / len(golds)


def macro_f1(predictions: Sequence[str], golds: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean over ``labels`` of per-label F1 = 2 TP / (#predicted + #gold),
    0-100.  A label that occurs neither among the predictions nor among the
    golds (likely in a small test split) is left out of the mean instead of
    counting as F1 = 0."""
    _same_length(predictions, golds)
    f1s = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(predictions, golds))
        n_pred = sum(p == label for p in predictions)
        n_gold = sum(g == label for g in golds)
        if n_pred == 0 and n_gold == 0:
            continue
        f1s.append(2 * tp / (n_pred + n_gold))
    return 100.0 * sum(f1s) / len(f1s) if f1s else 0.0


__all__ = ["normalize_answer", "exact_match", "token_f1", "best_over_aliases",
           "bleu_tokenizer", "corpus_bleu", "corpus_chrf", "sentence_chrf",
           "accuracy", "macro_f1"]
