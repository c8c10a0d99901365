"""SEO's decision logic with a scripted model (answers chosen by the test).

The toy task: the gold answer is always "yes".  The scripted generator answers
"yes" exactly when its prompt holds the rule "always answer yes", so an
experience's validation score is 1.0 with that rule and 0.0 without it.  The
scripted optimizer's reply is chosen per test.  Everything else -- prompts,
parsing, validation, selection, logging -- is the real code.
"""
from __future__ import annotations

import json

import pytest

from seo_lite import SEOConfig, train
from seo_lite.method.config import ConfigError
from seo_lite.machinery.data import Splits
from seo_lite.method.prompts import EXPERIENCE_HEADER
from seo_lite.machinery.runs import load_run
from seo_lite.tasks.base import Example, Task
from tests.support.scripted import ScriptedLLM

GOOD, BAD = "always answer yes", "always answer no"


class YesTask(Task):
    name, family, instruction = "yes", "toy", "Answer yes or no."
    metric_names = ("accuracy",)

    def score(self, answer, example):
        return float(answer.strip().lower() == example.gold)

    def corpus_metrics(self, answers, examples):
        return {"accuracy": sum(self.score(a, e) for a, e in zip(answers, examples)) / len(examples)}


def splits(n_train=20):
    ex = lambda i: Example(f"q{i}", f"question {i}?", ("yes",))
    return Splits("yes", 0, train=[ex(i) for i in range(n_train)], dev=[ex(100 + i) for i in range(4)],
                  test=[ex(200 + i) for i in range(4)])


def generator():
    return ScriptedLLM(lambda r: "yes" if GOOD in r.messages[-1]["content"] else "no", name="gen")


def optimizer(reply):
    return ScriptedLLM(lambda r: reply(r) if callable(reply) else reply, name="opt")


def cfg(**kw):
    base = dict(task="yes", steps=1, batch_size=2, num_candidates=2, val_size=6, max_rules=3,
                train_size=20, dev_size=4, test_size=4, bootstrap=0)
    return SEOConfig(**{**base, **kw})


def run(config, opt, gen=None, run_dir=None):
    return train(config, task=YesTask(), splits=splits(), generator=gen or generator(),
                 optimizer=opt, run_dir=run_dir, progress=False)


def test_better_candidate_is_accepted():
    r = run(cfg(), optimizer(f"1. {GOOD}\n2. be brief"))
    step = r.steps[0]
    assert step.decision.accepted and step.decision.best_score == 1.0
    assert step.decision.current_score == 0.0
    assert r.experience.rules == (GOOD, "be brief")
    assert step.candidates[1].duplicate_of == "c0", "identical candidates are scored once"


def test_worse_candidate_is_rejected():
    r = run(cfg(initial_experience=(GOOD,)), optimizer(f"1. {BAD}"))
    d = r.steps[0].decision
    assert not d.accepted and d.current_score == 1.0 and d.best_score == 0.0
    assert r.experience.rules == (GOOD,)


def test_tie_keeps_current_experience():
    r = run(cfg(initial_experience=(GOOD,)), optimizer(f"1. {GOOD}\n2. answer politely"))
    d = r.steps[0].decision
    assert d.best_score == d.current_score == 1.0 and not d.accepted
    assert r.experience.rules == (GOOD,)


def test_validation_none_accepts_without_checking():
    gen = generator()
    r = run(cfg(initial_experience=(GOOD,), validation="none"), optimizer(f"1. {BAD}"), gen=gen)
    d = r.steps[0].decision
    assert d.accepted and d.current_score is None and r.experience.rules == (BAD,)
    assert r.steps[0].validation_ids == []
    # only the trials reached the generator: 2 examples x (with, without)
    assert len(gen.seen) == 4


def test_fixed_validation_reuses_one_set():
    r = run(cfg(steps=3, validation="fixed"), optimizer("1. be brief"))
    ids = [s.validation_ids for s in r.steps]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 6
    stochastic = run(cfg(steps=3), optimizer("1. be brief"))
    assert len({tuple(s.validation_ids) for s in stochastic.steps}) > 1, "D_t is fresh each step"
    for s in stochastic.steps:
        assert not set(s.validation_ids) & set(s.batch_ids), "D_t excludes the mini-batch"


def test_comparison_trials_off_removes_delta_and_second_trial():
    gen, opt = generator(), optimizer(f"1. {GOOD}")
    r = run(cfg(initial_experience=("be brief",), comparison_trials=False), opt, gen=gen)
    prompts = [x.messages[-1]["content"] for x in opt.seen]
    assert len(prompts) == 4  # n * k
    for p in prompts:
        assert "without any rules" not in p.lower() and "effect" not in p
        assert "With the current rules, the model answered" in p
    trial_prompts = [x.messages[-1]["content"] for x in gen.seen[:2]]
    assert all(EXPERIENCE_HEADER in p for p in trial_prompts), "only the with-E trial ran"
    assert all(t["without"] is None and t["effect"] is None for t in r.steps[0].trials)

    opt_on = optimizer(f"1. {GOOD}")
    run(cfg(initial_experience=("be brief",)), opt_on)
    p = opt_on.seen[0].messages[-1]["content"]
    assert "Without any rules, the model answered" in p and "(effect +0.00)" in p


def test_effect_is_with_minus_without():
    r = run(cfg(initial_experience=(GOOD,)), optimizer("1. be brief"))
    for t in r.steps[0].trials:
        assert t["with"]["score"] == 1.0 and t["without"]["score"] == 0.0 and t["effect"] == 1.0


def test_unparseable_reply_is_recorded_and_skipped(tmp_path):
    replies = iter(["I cannot help with that.", "", f"1. {GOOD}", "   "])
    opt = optimizer(lambda r: next(replies))
    r = run(cfg(), opt, run_dir=tmp_path / "run")
    cands = r.steps[0].candidates
    failed = [c for c in cands if not c.valid]
    assert [c.raw for c in failed] == ["I cannot help with that.", "", "   "]
    assert failed[0].failure == "no numbered or bulleted rules found"
    assert failed[1].failure == "empty reply"
    assert r.steps[0].decision.accepted and r.experience.rules == (GOOD,)
    logged = json.loads((tmp_path / "run" / "steps.jsonl").read_text().splitlines()[0])
    assert logged["candidates"][0]["raw"] == "I cannot help with that."
    assert logged["candidates"][0]["failure"] and logged["candidates"][0]["val_score"] is None


def test_all_replies_unparseable_keeps_experience():
    r = run(cfg(initial_experience=(GOOD,)), optimizer("no list here, sorry"))
    d = r.steps[0].decision
    assert not d.accepted and "unparseable" in d.reason and r.experience.rules == (GOOD,)


def test_rules_beyond_max_rules_are_cut_and_logged():
    reply = "\n".join(f"{i}. rule number {i}" for i in range(1, 8)) + f"\n8. {GOOD}"
    r = run(cfg(max_rules=3), optimizer(reply))
    c = r.steps[0].candidates[0]
    assert len(c.experience) == 3 and len(c.cut) == 5 and GOOD in c.cut
    assert any("kept the first 3 of 8" in n for n in c.notes)


def test_k_candidates_use_distinct_sample_indices_per_step():
    opt = optimizer("1. be brief")
    run(cfg(steps=2, num_candidates=3), opt)
    idx = [x.sample_index for x in opt.seen]
    assert idx == [0, 1, 2] * 2 + [3, 4, 5] * 2


@pytest.mark.parametrize("bad,match", [
    (dict(max_rules=0), "max_rules"), (dict(num_candidates=0), "num_candidates"),
    (dict(val_size=19), "val_size"), (dict(validation="sometimes"), "validation"),
    (dict(batch_size=21), "batch_size"), (dict(initial_experience=("a", "b", "c", "d")), "max_rules"),
])
def test_bad_config_is_a_clear_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        cfg(**bad)


def test_resume_after_interrupt_gives_the_same_run(tmp_path):
    n = {"calls": 0}

    def reply(r):
        n["calls"] += 1
        return f"1. {GOOD}" if r.sample_index % 3 == 0 else f"1. {BAD}\n2. rule {r.sample_index}"

    full = run(cfg(steps=4), optimizer(reply), run_dir=tmp_path / "full")

    def dying(r):
        if r.sample_index >= 4:           # step 2 of 4 (sample indices 4, 5)
            raise KeyboardInterrupt
        return reply(r)

    with pytest.raises(KeyboardInterrupt):
        run(cfg(steps=4), optimizer(dying), run_dir=tmp_path / "cut")
    half, _ = load_run(tmp_path / "cut")
    assert len(half.steps) == 2
    resumed = run(cfg(steps=4), optimizer(reply), run_dir=tmp_path / "cut")
    strip = lambda s: {k: v for k, v in s.to_dict().items() if k not in ("seconds", "usage")}
    assert [strip(s) for s in resumed.steps] == [strip(s) for s in full.steps]
    assert resumed.experience == full.experience
    lines = (tmp_path / "cut" / "steps.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 1, 2, 3]


def test_step_progress_follows_the_progress_setting(monkeypatch, capsys):
    """Off a terminal (SEO_LITE_PROGRESS=lines) the steps report as plain lines with the
    accepted count; "off" prints nothing."""
    monkeypatch.setenv("SEO_LITE_PROGRESS", "lines")
    train(cfg(steps=2), task=YesTask(), splits=splits(), generator=generator(),
          optimizer=optimizer(f"1. {GOOD}"), progress=True)
    err = capsys.readouterr().err
    assert "SEO steps: 2/2 (100%)" in err and "accepted=1" in err and "\r" not in err
    monkeypatch.setenv("SEO_LITE_PROGRESS", "off")
    train(cfg(steps=2), task=YesTask(), splits=splits(), generator=generator(),
          optimizer=optimizer(f"1. {GOOD}"), progress=True)
    assert "SEO steps" not in capsys.readouterr().err
