"""Metrics against values worked out by hand (see the comments)."""
from __future__ import annotations

import math

import pytest

from seo_lite.tasks.metrics import (accuracy, best_over_aliases, bleu_tokenizer, corpus_bleu,
                                    corpus_chrf, exact_match, macro_f1, normalize_answer,
                                    sentence_chrf, token_f1)


# -- QA ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("The  Eiffel Tower!", "eiffel tower"),
    ("an apple, a pear and THE plum.", "apple pear and plum"),
    ("  U.S.A. ", "usa"),
    ("theory", "theory"),                    # "the" only as a whole word
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match():
    assert exact_match("the Eiffel Tower.", "Eiffel Tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


@pytest.mark.parametrize("pred, gold, expected", [
    ("Eiffel", "Eiffel Tower", 2 / 3),       # P = 1, R = 1/2
    ("the cat sat", "cat sat down", 0.8),    # P = 2/2, R = 2/3
    ("new new york", "new york", 0.8),       # common counts clipped: P = 2/3, R = 1
    ("Paris", "London", 0.0),
    ("Paris!", "paris", 1.0),
    ("", "", 1.0),                           # both empty: match
    ("", "Paris", 0.0),
    ("the", "a", 1.0),                       # both normalise to nothing
])
def test_token_f1(pred, gold, expected):
    assert token_f1(pred, gold) == pytest.approx(expected)


def test_best_over_aliases():
    golds = ["Ptolemy IX Soter II", "Lathyros"]
    assert best_over_aliases(exact_match, "lathyros", golds) == 1.0
    assert best_over_aliases(token_f1, "Ptolemy IX", golds) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert best_over_aliases(token_f1, "x", []) == 0.0


# -- translation ------------------------------------------------------------------------------
def test_bleu_identical_is_100():
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)


def test_bleu_brevity_penalty_by_hand():
    # every 1..4-gram of the hypothesis is in the reference: precisions are all 1,
    # so BLEU = BP = exp(1 - ref_len / hyp_len) = exp(1 - 6/4)
    score = corpus_bleu(["the cat sat on"], ["the cat sat on the mat"])
    assert score == pytest.approx(100 * math.exp(-0.5), abs=1e-6)


def test_bleu_chinese_needs_the_zh_tokenizer():
    hyp, ref = ["我爱北京"], ["我爱北京天安门"]
    # zh splits characters: 4 hyp chars, all n-grams match, BP = exp(1 - 7/4)
    assert corpus_bleu(hyp, ref, tokenize="zh") == pytest.approx(100 * math.exp(-0.75), abs=1e-6)
    # 13a sees one "word" on each side, and they differ
    assert corpus_bleu(hyp, ref, tokenize="13a") == 0.0


def test_bleu_tokenizer_per_language():
    assert bleu_tokenizer("zh") == "zh"
    assert bleu_tokenizer("de") == "13a"
    assert bleu_tokenizer("en") == "13a"
    try:
        import MeCab  # noqa: F401
        import ipadic  # noqa: F401
        expected_ja = "ja-mecab"
    except ImportError:
        expected_ja = "char"
    assert bleu_tokenizer("ja") == expected_ja
    assert bleu_tokenizer("ko") in ("ko-mecab", "char")


def test_chrf_by_hand():
    assert sentence_chrf("abcd", ["abcd"]) == pytest.approx(100)
    assert sentence_chrf("xyz", ["abcd"]) == 0.0
    assert sentence_chrf("", ["abcd"]) == 0.0
    # hyp "ab", ref "abcd": 1-grams P = 2/2, R = 2/4; 2-grams P = 1/1, R = 1/3; no longer
    # hyp n-grams.  Averages P = 1, R = 5/12; chrF(beta=2) = 5 P R / (4 P + R) = 25/53
    assert sentence_chrf("ab", ["abcd"]) == pytest.approx(100 * 25 / 53, abs=1e-6)
    assert corpus_chrf(["ab"], ["abcd"]) == pytest.approx(100 * 25 / 53, abs=1e-6)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


# -- classification ---------------------------------------------------------------------------
def test_accuracy_and_macro_f1_by_hand():
    preds, golds = ["a", "a", "b", ""], ["a", "b", "b", "b"]
    assert accuracy(preds, golds) == pytest.approx(50.0)
    # F1(a) = 2*1/(2+1) = 2/3; F1(b) = 2*1/(1+3) = 1/2; "c" occurs nowhere: left out
    assert macro_f1(preds, golds, ["a", "b", "c"]) == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    assert macro_f1(["c"], ["a"], ["a", "b", "c"]) == 0.0
    assert accuracy([], []) == 0.0
