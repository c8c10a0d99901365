"""Calibrated label ranking: the decision logic with a scripted model (known
log-probs -> known calibrated answers), the wiring into config, run directory
and explorer, and one small run of the real embedded model."""
from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from seo_lite import SEOConfig
from seo_lite.lab import explorer
from seo_lite.method.config import ConfigError
from seo_lite.method.experience import Experience
from seo_lite.method.prompts import EXPERIENCE_HEADER
from seo_lite.tasks import get_task
from seo_lite.tasks import calibration as calib
from seo_lite.tasks.base import Example, TaskError
from tests.support.scripted import ScriptedLLM

RULE = "Read the whole review before deciding."


def lp(p_neg: float, offset: float = -3.0) -> list[float]:
    """Raw label log-probs for (negative, positive) with p(negative) = p_neg,
    shifted by ``offset`` (raw scores are not normalised over the labels)."""
    return [math.log(p_neg) + offset, math.log(1 - p_neg) + offset]


def review_of(req) -> str:
    """The example slot of an SST-2 prompt (what follows 'Review:')."""
    return req.messages[-1]["content"].rsplit("Review:", 1)[1].strip()


def has_rule(req) -> bool:
    return RULE in req.messages[-1]["content"]


def sst2(calibration: str):
    return get_task("sst2", answer_mode="rank", calibration=calibration)


EXAMPLES = [Example(f"r{i}", text, (gold,)) for i, (text, gold) in enumerate(
    [("a", "negative"), ("b", "positive"), ("c", "negative"), ("d", "positive")])]


# -- the arithmetic --------------------------------------------------------------------------
def test_prior_is_the_mean_distribution_in_probability_space():
    rows = [lp(0.02, -1.0), lp(0.6, -7.0), lp(0.6, 0.0)]
    prior = [math.exp(x) for x in calib.log_prior(rows)]
    assert prior == pytest.approx([(0.02 + 0.6 + 0.6) / 3, (0.98 + 0.4 + 0.4) / 3])
    # not the geometric mean (averaging log-probs), which would favour "positive" far more
    geo = [math.exp(sum(math.log(p) for p in ps) / 3) for ps in ((0.02, 0.6, 0.6), (0.98, 0.4, 0.4))]
    assert prior[0] > geo[0] / sum(geo) + 0.1
    q = calib.calibrate(lp(0.3), calib.log_prior([lp(0.2)]))
    assert q == pytest.approx([0.3 / 0.2 / (0.3 / 0.2 + 0.7 / 0.8), 0.7 / 0.8 / (0.3 / 0.2 + 0.7 / 0.8)])
    assert sum(q) == pytest.approx(1.0)
    # a prior far below float range still divides out (log space)
    assert calib.argmax(calib.calibrate([-900.0, -1.0], [-950.0, 0.0])) == 0



def test_the_answer_is_the_argmax_of_the_stored_row():
    """A near-tie that rounding to 4 decimals turns into a tie: the stored
    calibrated row is [0.5, 0.5], so the answer is its first label, as a reader
    taking the argmax of the logged row finds (issue 20: chapter 01's check)."""
    prior = calib.log_prior([lp(0.5)])
    best, raw, pi, q = calib.decide(lp(0.5 - 1e-6), prior)
    assert q == [0.5, 0.5] and best == 0 == calib.argmax(q)
    assert calib.argmax(calib.calibrate(lp(0.5 - 1e-6), prior)) == 1     # the unrounded argmax differs
    assert pi == [0.5, 0.5] and raw == [round(x, 4) for x in lp(0.5 - 1e-6)]
    best, raw, pi, q = calib.decide([-2.00001, -2.0])                   # raw rows too
    assert raw == [-2.0, -2.0] and best == 0 and pi is None and q is None
    ex = Example("r", "a", ("negative",))
    pred = sst2("contextual").predict(ScriptedLLM(lambda r: "", score=lambda r: lp(0.5 - 1e-6)), [ex])[0]
    assert pred.calibrated_probs == [0.5, 0.5] and pred.answer == "negative"

# -- contextual calibration ------------------------------------------------------------------
def contextual_scores(req):
    """Examples: r0 p(neg)=0.3, r1 0.1 (both "positive" raw).  Content-free prompts:
    p(neg)=0.2 without the rule (a prior toward "positive"), 0.5 with it."""
    text = review_of(req)
    if text in calib.CONTENT_FREE_INPUTS:
        return lp(0.5 if has_rule(req) else 0.2)
    return lp({"a": 0.3, "b": 0.1, "c": 0.6, "d": 0.2}[text])


def test_contextual_divides_out_the_content_free_prior_of_the_same_experience():
    llm = ScriptedLLM(lambda r: "", score=contextual_scores)
    rule = Experience([RULE])
    pairs = [(ex, None) for ex in EXAMPLES[:2]] + [(ex, rule) for ex in EXAMPLES[:2]]
    raw = sst2("none").predict_pairs(llm, pairs)
    assert [p.answer for p in raw] == ["positive"] * 4
    assert all(p.label_prior is None and p.calibrated_probs is None for p in raw)

    llm.seen.clear()
    preds = sst2("contextual").predict_pairs(llm, pairs)
    # without the rule the prior (0.2, 0.8) is divided out: 0.3/0.2 > 0.7/0.8 flips r0;
    # r1 (0.1/0.2 < 0.9/0.8) stays positive.  With the rule the prior is (0.5, 0.5): no flip.
    assert [p.answer for p in preds] == ["negative", "positive", "positive", "positive"]
    assert [p.score for p in preds] == [1.0, 1.0, 0.0, 1.0]
    assert preds[0].label_prior == pytest.approx([0.2, 0.8], abs=1e-4)
    assert preds[2].label_prior == pytest.approx([0.5, 0.5], abs=1e-4)
    assert preds[0].calibrated_probs == pytest.approx([1.5 / (1.5 + 0.875), 0.875 / (1.5 + 0.875)],
                                                      abs=1e-4)
    assert preds[0].label_logprobs == raw[0].label_logprobs           # raw scores keep their meaning
    d = preds[0].to_dict()
    assert d["label_prior"] and d["calibrated_probs"] and "label_prior" not in raw[0].to_dict()

    # one call: 4 examples + 3 content-free prompts per experience, each carrying it
    cf = [r for r in llm.seen if review_of(r) in calib.CONTENT_FREE_INPUTS]
    assert len(llm.seen) == 4 + 2 * 3 and len(cf) == 6
    assert sorted(review_of(r) for r in cf) == sorted(calib.CONTENT_FREE_INPUTS * 2)
    with_rule = [r for r in cf if has_rule(r)]
    assert len(with_rule) == 3 and all(EXPERIENCE_HEADER in r.messages[-1]["content"] for r in with_rule)
    assert all(r.messages[:-1] == llm.seen[0].messages[:-1] for r in cf)   # same instruction/system


def test_contextual_prompts_are_cached_like_every_call(tmp_path):
    llm = ScriptedLLM(lambda r: "", score=contextual_scores, cache=tmp_path / "cache")
    first = sst2("contextual").predict(llm, EXAMPLES, Experience([RULE]))
    again = ScriptedLLM(lambda r: "", score=contextual_scores, cache=tmp_path / "cache")
    second = sst2("contextual").predict(again, EXAMPLES, Experience([RULE]))
    assert [p.to_dict() for p in first] == [p.to_dict() for p in second]
    assert again.usage.total().calls == 0 and again.usage.total().cache_hits == 4 + 3


# -- batch calibration -------------------------------------------------------------------------
BATCH = {None: {"a": 0.35, "b": 0.1, "c": 0.6, "d": 0.2},
         RULE: {"a": 0.9, "b": 0.7, "c": 0.8, "d": 0.95}}


def batch_scores(req):
    return lp(BATCH[RULE if has_rule(req) else None][review_of(req)])


def test_batch_prior_is_the_mean_over_the_examples_scored_together_per_experience():
    llm = ScriptedLLM(lambda r: "", score=batch_scores)
    rule = Experience([RULE])
    pairs = [(ex, None) for ex in EXAMPLES] + [(ex, rule) for ex in EXAMPLES]
    raw = sst2("none").predict_pairs(llm, pairs)
    assert [p.answer for p in raw[:4]] == ["positive", "positive", "negative", "positive"]
    assert [p.answer for p in raw[4:]] == ["negative"] * 4
    llm.seen.clear()
    preds = sst2("batch").predict_pairs(llm, pairs)
    assert len(llm.seen) == 8                                  # no extra prompts
    # without the rule: prior (0.3125, 0.6875); r0: 0.35/0.3125 > 0.65/0.6875 -> negative.
    # (pooled over both experiences the prior would be (0.575, 0.425) and r0 stays positive)
    assert preds[0].label_prior == pytest.approx([0.3125, 0.6875], abs=1e-4)
    assert [p.answer for p in preds[:4]] == ["negative", "positive", "negative", "positive"]
    # with the rule: prior (0.8375, 0.1625); r1: 0.7/0.8375 < 0.3/0.1625 -> positive,
    # r3: 0.95/0.8375 > 0.05/0.1625 -> negative
    assert preds[4].label_prior == pytest.approx([0.8375, 0.1625], abs=1e-4)
    assert [p.answer for p in preds[4:]] == ["negative", "positive", "positive", "negative"]
    assert sum(p.score for p in preds) == 6 and sum(p.score for p in raw) == 5


def test_batch_counts_each_distinct_example_once_and_empty_equals_no_experience():
    llm = ScriptedLLM(lambda r: "", score=batch_scores)
    a, b = EXAMPLES[0], EXAMPLES[1]
    preds = sst2("batch").predict_pairs(llm, [(a, None), (a, Experience()), (a, None), (b, None)])
    assert all(p.label_prior == pytest.approx([(0.35 + 0.1) / 2, (0.65 + 0.9) / 2], abs=1e-4)
               for p in preds)


def test_validation_scores_each_candidate_with_its_own_batch_prior():
    from seo_lite.method.seo import score_experiences

    llm = ScriptedLLM(lambda r: "", score=batch_scores)
    scores = score_experiences(sst2("batch"), llm, [Experience(), Experience([RULE])], EXAMPLES)
    assert scores == [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]


# -- settings, run directory, explorer -------------------------------------------------------
def test_calibration_is_a_score_mode_setting():
    assert get_task("trec").calibration == "none"
    with pytest.raises(TaskError, match="label ranking"):
        get_task("sst2", answer_mode="generate", calibration="batch")
    with pytest.raises(TaskError, match="unknown calibration"):
        get_task("sst2", answer_mode="rank", calibration="platt")
    with pytest.raises(ConfigError, match="calibration must be one of"):
        SEOConfig(calibration="platt")
    with pytest.raises(ConfigError, match="label ranking"):
        SEOConfig(answer_mode="generate", calibration="contextual")
    assert get_task("ag_news", answer_mode="rank", calibration="contextual").describe()["calibration"] \
        == "contextual"


def test_run_directory_records_calibration_and_explorer_shows_it(tmp_path):
    from seo_lite.lab.experiment import run_experiment
    from seo_lite.machinery.runs import load_run

    def score(req):
        return lp(0.3 + 0.4 * (len(req.messages[-1]["content"]) % 2))
    llm = ScriptedLLM(lambda r: f"1. {RULE}", score=score)
    cfg = SEOConfig.preset("smoke", task="sst2", answer_mode="rank", calibration="contextual",
                           steps=1)
    run_experiment(cfg, tmp_path / "run", generator=llm, optimizer=llm, progress=False, figure=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["calibration"] == "contextual"
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["task"]["calibration"] == "contextual"
    run, _ = load_run(tmp_path / "run")
    assert run.config.calibration == "contextual"
    view = explorer.step_view(run, 0)
    assert view["calibration"] == "contextual"
    assert view["trials"][0]["with"]["label_prior"] and view["trials"][0]["with"]["calibrated_probs"]
    assert "calibration contextual" in explorer.render_text(view)
    eval_rows = (tmp_path / "run" / "eval" / "test.jsonl").read_text()
    assert "calibrated_probs" in eval_rows


# -- the real embedded model -----------------------------------------------------------------
def test_embedded_calibration_moves_answers_off_the_majority_label(tmp_path):
    """8 SST-2 reviews: raw scoring says mostly one label; both calibrations say
    it less often.  A second pass over the same cache makes no model call."""
    from seo_lite.machinery.data import load_splits
    from seo_lite.llm import make_llm

    cache = tmp_path / "cache"
    reviews = load_splits("sst2", train=8, dev=0, test=0, seed=0).train
    llm = make_llm("embedded", cache=cache)
    dist = {c: Counter(p.answer for p in sst2(c).predict(llm, reviews)) for c in calib.CALIBRATIONS}
    majority, n_major = dist["none"].most_common(1)[0]
    assert n_major >= 6, dist                      # the model's label bias
    for c in ("contextual", "batch"):
        assert dist[c][majority] < n_major, (c, dist)
    assert llm.usage.total().calls == 8 + 3        # examples once, the 3 content-free prompts
    again = make_llm("embedded", cache=cache)
    dist2 = {c: Counter(p.answer for p in sst2(c).predict(again, reviews)) for c in calib.CALIBRATIONS}
    assert dist2 == dist and again.usage.total().calls == 0
