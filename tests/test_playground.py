"""The learner as the optimizer: SEO's own validation and selection judge typed rules.

Decision logic with a scripted generator; one try with the real embedded model;
the widget driven without a browser (``Button.click()`` runs the same handler
a click in the notebook runs)."""
from __future__ import annotations

import json

import pytest

from seo_lite import Experience, SEOConfig
from seo_lite.machinery.data import load_splits
from seo_lite.lab.playground import Playground, rules_from_text
from seo_lite.method.seo import sample_validation_set, score_experiences, step_rng
from seo_lite.tasks import get_task
from seo_lite.tasks.base import Example
from tests.support.scripted import ScriptedLLM

GOOD = "Questions that start with Who ask for a human."


def test_rules_are_read_one_per_line_numbered_or_not_and_capped():
    p = rules_from_text("Who asks for a human.\n\n2. Where asks for a location.\n- How many asks for a number.", 5)
    assert p.experience.to_list() == ["Who asks for a human.", "Where asks for a location.",
                                      "How many asks for a number."]
    p = rules_from_text(["rule one here", "rule two here", "rule three here"], 2)
    assert p.experience.to_list() == ["rule one here", "rule two here"] and p.cut == ("rule three here",)
    assert not rules_from_text("   \n  ", 3).ok


def _scripted(good=GOOD):
    """Right on every example when ``good`` is among the rules, else always 'abbreviation'."""
    def score(r):
        text = r.messages[-1]["content"]
        gold = "human" if "Who" in text.split("Question:")[-1] else "number"
        pick = gold if good in text else "abbreviation"
        return [0.0 if lab.strip() == pick else -1.0 for lab in r.continuations]
    return ScriptedLLM(lambda r: "", score=score)


@pytest.fixture
def pg(tmp_path):
    task = get_task("trec", answer_mode="rank")
    train = [Example(f"q{i}", f"Who is person {i}?" if i % 2 else f"How many items {i}?",
                     ("human" if i % 2 else "number",)) for i in range(30)]
    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="rank", val_size=6, max_rules=3,
                           train_size=30, seed=3)
    return Playground(task, _scripted(), train, cfg, log=tmp_path / "runs" / "learner_tries.json",
                      who="ada")


def test_a_helpful_rule_is_accepted_and_becomes_E_t_and_the_same_rules_again_are_not(pg):
    t = pg.submit(f"{GOOD}\nAnswer in one word.")
    assert t.accepted and t.v_candidate > t.v_t and "beat E_t" in t.reason
    assert pg.experience.to_list() == [GOOD, "Answer in one word."]
    again = pg.submit(f"1. {GOOD}\n2. Answer in one word.")
    assert not again.accepted and "E_t already" in again.reason
    assert again.experience_t == [GOOD, "Answer in one word."]
    worse = pg.submit("Every question asks for an abbreviation.")
    assert not worse.accepted and worse.v_candidate < worse.v_t
    assert pg.experience.to_list() == [GOOD, "Answer in one word."]
    assert "REJECT" in str(worse) and "ACCEPT" in str(t)
    assert str(t).startswith("try 1:") and str(worse).startswith("try 3:")
    for x in (t, again, worse):          # spoken to the learner: no internal candidate id
        assert "your rules" in x.reason or "E_t already" in x.reason
        assert not any(w in str(x) for w in ("learner", "candidate c", " c0"))


def test_each_try_draws_a_fresh_D_t_with_the_library_code_and_is_logged(pg):
    tries = [pg.submit("Be careful."), pg.submit(GOOD), pg.submit("Be brief.")]
    for t in tries:      # the same draw and the same scores the library gives
        d_t = sample_validation_set(pg.train, 6, step_rng(3, t.number - 1, "learner-validation"))
        assert t.validation_ids == [ex.id for ex in d_t]
        s_t, s_c = score_experiences(pg.task, pg.generator,
                                     [Experience(tuple(t.experience_t)), Experience(tuple(t.rules))], d_t)
        assert (t.scores_t, t.scores_candidate) == (s_t, s_c)
    assert len({tuple(t.validation_ids) for t in tries}) == 3, "a fresh D_t per try"
    log = Playground.read_log(pg.log)
    assert [e["number"] for e in log] == [1, 2, 3], "tries count from 1"
    assert [e["accepted"] for e in log] == [False, True, False]
    assert log[1]["rules"] == [GOOD] and log[1]["who"] == "ada" and log[1]["task"] == "trec"
    assert all(e["timestamp"] and len(e["validation_ids"]) == 6 for e in log)
    # a second learner sharing the log continues the numbering (and so draws new D_t)
    other = Playground(pg.task, pg.generator, pg.train, pg.config, log=pg.log, who="bob")
    assert other.submit("Be precise.").number == 4
    assert len(Playground.read_log(pg.log)) == 4


def test_empty_rules_are_refused_without_a_log_entry(pg):
    with pytest.raises(ValueError, match="no rules found"):
        pg.submit("\n  \n")
    assert Playground.read_log(pg.log) == []


def test_the_widget_button_runs_submit_without_a_browser(pg, capsys):
    box = pg.widget()
    area, button, out = box.children
    area.value = GOOD
    button.click()                       # what a click in the notebook does
    log = Playground.read_log(pg.log)
    assert len(log) == 1 and log[0]["accepted"] and log[0]["rules"] == [GOOD]
    area.value = ""
    button.click()                       # an empty box is reported, not an exception
    assert len(Playground.read_log(pg.log)) == 1


@pytest.mark.slow
def test_one_try_with_the_real_embedded_model(embedded, tmp_path):
    task = get_task("trec", answer_mode="rank")
    train = load_splits(task, train=12, dev=0, test=0, seed=0).train
    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="rank", val_size=3, train_size=12)
    pg = Playground(task, embedded, train, cfg, log=tmp_path / "tries.json")
    t = pg.submit(["Questions that start with Who ask for a human.",
                   "Questions that start with Where ask for a location."])
    assert len(t.scores_t) == len(t.scores_candidate) == 3
    assert all(s in (0.0, 1.0) for s in t.scores_t + t.scores_candidate)
    assert t.accepted == (t.v_candidate > t.v_t)
    entry = json.loads((tmp_path / "tries.json").read_text())[0]
    assert entry["generator"] == embedded.name and entry["v_t"] == t.v_t
