"""Baselines in the same harness: reference experiences, the rule-bank optimizer,
and the comparison figure built from run directories.

Decision logic runs with a scripted generator; the mechanisms run with the real
embedded model (a CLI run with ``--optimizer rulebank`` killed after step 1 and
resumed, and the comparison runs + figure on tiny splits)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seo_lite import Experience, SEOConfig
from seo_lite.lab.baselines import (ARMS, arm_configs, build_figures, check_equal_budget, collect,
                                load_references, reference_experience, run_comparison,
                                stratified_bootstrap, summarize)
from seo_lite.llm import GenParams, LLMError, Request, make_llm
from seo_lite.llm.rulebank import RULE_BANK, RuleBankLLM, guess_family, read_optimizer_prompt
from seo_lite.method.prompts import optimizer_messages
from seo_lite.tasks import get_task, list_tasks
from tests.support.scripted import ScriptedLLM

REPO = Path(__file__).resolve().parents[1]


# -- reference experiences -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list_tasks(flores="none") + ["flores:en-fr", "flores:ja-en"])
def test_every_builtin_task_has_a_short_reference(name):
    exp = reference_experience(name)
    assert 1 <= len(exp) <= 5
    assert all("{" not in r and "}" not in r for r in exp.rules)
    task = get_task(name)
    if task.family == "translation":          # the template names the task's own languages
        assert task.tgt_name in exp.rules[0] and task.src_name in exp.rules[0]


@pytest.mark.parametrize("name", ["trec", "sst2", "ag_news"])
def test_classification_references_are_written_from_the_label_set(name):
    text = " ".join(reference_experience(name).rules).lower()
    assert all(label in text for label in get_task(name).labels)


def test_reference_file_is_documented_and_unknown_task_is_clear(tmp_path):
    refs = load_references()
    assert "never tuned" in refs["about"]
    assert all(e.get("written_from") for e in refs["tasks"].values())
    bad = tmp_path / "refs.json"
    bad.write_text(json.dumps({"tasks": {}, "families": {}}))
    with pytest.raises(KeyError, match="no reference experience for task 'trec'"):
        reference_experience("trec", path=bad)


# -- the rule-bank optimizer -------------------------------------------------------------------------
def _opt_request(rules=(), max_rules=3, sample_index=0, temperature=0.8,
                 instruction=None, seed=0) -> Request:
    task = get_task("trec")
    msgs = optimizer_messages(
        instruction=instruction or task.instruction, input_text="Question: Who wrote Hamlet?",
        gold="human", experience=Experience(tuple(rules)), with_text="entity", with_score=0.0,
        max_rules=max_rules, without_text="entity", without_score=0.0, effect=0.0)
    return Request(msgs, GenParams(temperature=temperature, seed=seed), sample_index=sample_index,
                   prefix="1.")


def test_rulebank_reads_instruction_rules_and_cap_from_the_optimizer_prompt():
    rules = ["Be brief.", "Questions with Who ask for a human."]
    info = read_optimizer_prompt(_opt_request(rules, max_rules=4).messages)
    assert info == {"instruction": get_task("trec").instruction, "rules": rules, "max_rules": 4}
    assert read_optimizer_prompt(_opt_request([]).messages)["rules"] == []


@pytest.mark.parametrize("name,family", [("trec", "classification"), ("sst2", "classification"),
                                         ("hotpotqa", "multihop_qa"), ("2wikimultihopqa", "multihop_qa"),
                                         ("wmt23:de-en", "translation"), ("flores:en-ja", "translation")])
def test_family_is_read_from_the_builtin_instructions(name, family):
    assert guess_family(get_task(name).instruction) == family == get_task(name).family


def test_rulebank_makes_one_edit_with_rules_of_the_family_bank():
    rb = RuleBankLLM(cache=None)
    bank = set(RULE_BANK["classification"])
    start = ["Be brief.", "Questions with Who ask for a human."]
    edits = set()
    for j in range(24):
        text, note = rb.propose(_opt_request(start, max_rules=3, sample_index=j))
        new = Experience.parse(text, 3).experience.to_list()
        edits.add(note["edit"])
        assert len(new) <= 3 and new != start
        added, removed = set(new) - set(start), set(start) - set(new)
        assert added <= bank and len(added) <= 1 and len(removed) <= 1
        if note["edit"] == "add":
            assert len(new) == 3 and not removed
        elif note["edit"] == "drop":
            assert len(new) == 1 and not added
        else:
            assert len(new) == 2 and len(added) == len(removed) == 1
    assert edits == {"add", "replace", "drop"}
    # empty E_t: always one rule added; full E_t: never an add
    text, note = rb.propose(_opt_request([], sample_index=5))
    assert note["edit"] == "add" and text.startswith("1. ") and text.count("\n") == 0
    full = list(RULE_BANK["classification"][:3])
    for j in range(10):
        assert rb.propose(_opt_request(full, max_rules=3, sample_index=j))[1]["edit"] != "add"


def test_rulebank_is_deterministic_per_seed_sample_index_and_prompt():
    rb, other = RuleBankLLM(cache=None), RuleBankLLM(cache=None)
    req = _opt_request(["Be brief."], sample_index=3)
    assert rb.propose(req) == other.propose(req)
    texts = {rb.propose(_opt_request(["Be brief."], sample_index=j))[0] for j in range(8)}
    assert len(texts) >= 4, "k sample indices must give independent edits"
    seeds = {rb.propose(_opt_request(["Be brief."], sample_index=0, seed=s))[0] for s in range(8)}
    assert len(seeds) >= 4
    greedy = {rb.propose(_opt_request(["Be brief."], sample_index=j, temperature=0))[0]
              for j in range(5)}
    assert len(greedy) == 1, "greedy requests share one cache entry, so one answer"


def test_rulebank_spec_identity_and_options(tmp_path):
    rb = make_llm("rulebank", cache=str(tmp_path / "c"))
    assert isinstance(rb, RuleBankLLM) and rb.name == "rulebank"
    assert rb.identity()["backend"] == "rulebank" and len(rb.identity()["bank"]) == 16
    assert make_llm("rulebank", family="qa").family == "multihop_qa"
    with pytest.raises(LLMError, match="unknown rule-bank family"):
        make_llm("rulebank", family="poetry")
    with pytest.raises(LLMError, match="valid options: family"):
        make_llm("rulebank", temperature=1)
    # answers are cached and counted like any model's
    req = _opt_request(["Be brief."])
    first = rb.generate([req], role="optimizer")[0]
    again = make_llm("rulebank", cache=str(tmp_path / "c")).generate([req], role="optimizer")[0]
    assert again.cached and again.text == first.text
    # a forced family draws from its own bank
    text, note = make_llm("rulebank", family="translation", cache=None).propose(_opt_request([]))
    assert note["family"] == "translation" and text[3:] in RULE_BANK["translation"]


def test_rulebank_refuses_a_prompt_it_cannot_read():
    with pytest.raises(LLMError, match="could not read the optimizer prompt"):
        RuleBankLLM(cache=None).generate(Request("Write rules for me."))


def _label_scorer(good_rules):
    """A scripted generator that answers right only when one of ``good_rules`` is in its prompt."""
    def score(r):
        labels = r.continuations
        text = r.messages[-1]["content"]
        gold = "human" if "Who" in text else "number"
        right = any(g in text for g in good_rules)
        return [0.0 if (lab.strip() == gold) == right else -1.0 for lab in labels]
    return score


def test_seo_with_the_rule_bank_finds_a_helpful_bank_rule_and_replays_exactly(tmp_path):
    from seo_lite.tasks.base import Example
    from seo_lite.machinery.data import Splits
    from seo_lite import train

    good = [RULE_BANK["classification"][i] for i in (3, 4, 6)]
    train_ex = [Example(f"q{i}", (f"Who is person {i}?" if i % 2 else f"How many items {i}?"),
                        ("human" if i % 2 else "number",)) for i in range(20)]
    splits = Splits("trec", 0, train_ex, [], [], "local")
    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="rank", optimizer="rulebank",
                           steps=6, batch_size=2, num_candidates=2, val_size=6, train_size=20,
                           dev_size=0, test_size=0)
    runs = []
    for name in ("a", "b"):
        gen = ScriptedLLM(lambda r: "", score=_label_scorer(good))
        run = train(cfg, splits=splits, generator=gen, optimizer=make_llm("rulebank", cache=None),
                    run_dir=tmp_path / name, progress=False)
        runs.append(run)
    run = runs[0]
    assert set(good) & set(run.experience.rules), run.summary()
    assert run.accepted >= 1
    for s in run.steps:     # every valid candidate is one edit of E_t with bank rules
        for c in s.candidates:
            assert c.valid and set(c.experience.rules) - set(s.experience_before.rules) <= set(RULE_BANK["classification"])
        assert s.usage.get("optimizer", {}).get("calls") == 4
    strip = lambda r: [json.dumps({**st.to_dict(), "usage": {}, "seconds": 0}, sort_keys=True) for st in r.steps]
    assert strip(runs[0]) == strip(runs[1])


# -- statistics and the comparison figure ------------------------------------------------------------
def test_stratified_bootstrap_averages_seed_means_and_brackets_them():
    est = stratified_bootstrap([[1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], n_boot=400)
    assert est["mean"] == pytest.approx(0.75) and est["seeds"] == 2 and est["n"] == 10
    assert est["low"] < 0.75 < est["high"] and 0.5 <= est["low"]
    same = stratified_bootstrap([[0.2] * 5, [0.4] * 5], n_boot=100)
    assert same["low"] == same["high"] == pytest.approx(0.3)


def test_arm_configs_differ_only_where_they_should():
    cfgs = arm_configs("trec", 1, preset="smoke")
    assert set(cfgs) == set(ARMS)
    a, b = cfgs["llm"].to_dict(), cfgs["rulebank"].to_dict()
    assert {k for k in a if a[k] != b[k]} == {"optimizer"}
    ref = cfgs["reference"]
    assert ref.steps == 0 and list(ref.initial_experience) == reference_experience("trec").to_list()
    assert ref.seed == 1 and cfgs["llm"].answer_mode == ref.answer_mode
    # a local generator ranks the labels; a server (no log-likelihoods) generates
    assert get_task("trec", answer_mode=cfgs["llm"].answer_mode).answer_mode != get_task("trec").answer_mode
    assert arm_configs("trec", 0, preset="smoke", generator="openai:gpt-4o-mini")["llm"].answer_mode is None


TINY = dict(steps=1, batch_size=1, num_candidates=1, val_size=2, train_size=5, dev_size=0,
            test_size=4, opt_max_new_tokens=16, bootstrap=50)


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory):
    """Real comparison runs with the embedded model: trec, two seeds, tiny splits."""
    root = tmp_path_factory.mktemp("compare")
    logs: list[str] = []
    run_comparison(["trec"], [0, 1], root / "runs", preset="smoke", overrides=TINY, log=logs.append)
    return root, logs


@pytest.mark.slow
def test_comparison_runs_resume_and_the_figure_is_built_from_them(compare_runs):
    root, logs = compare_runs
    runs = root / "runs"
    assert sum(line.startswith("finished") for line in logs) == 6
    again: list[str] = []
    run_comparison(["trec"], [0, 1], runs, preset="smoke", overrides=TINY, log=again.append)
    assert again and all(line.startswith("done") for line in again), "finished runs are skipped"
    found = collect(runs)
    assert list(found) == ["trec"] and sorted(found["trec"]) == [0, 1]
    paths = build_figures(runs, root / "figures", n_boot=200, log=lambda s: None)
    png, js = paths
    assert png.name == "comparison-trec.png" and png.stat().st_size > 10_000
    summary = json.loads(js.read_text())
    # the numbers are the run directories' numbers
    for s_i, seed in enumerate((0, 1)):
        rows = [json.loads(l) for l in (runs / "trec" / f"llm-s{seed}" / "eval" / "test.jsonl").read_text().splitlines()]
        assert summary["arms"]["llm"]["per_seed"][s_i] == pytest.approx(sum(r["with"]["score"] for r in rows) / 4)
        assert summary["arms"]["none"]["per_seed"][s_i] == pytest.approx(sum(r["without"]["score"] for r in rows) / 4)
        final = json.loads((runs / "trec" / f"reference-s{seed}" / "final.json").read_text())
        assert final["experience"] == reference_experience("trec").to_list()
        assert summary["arms"]["reference"]["per_seed"][s_i] == pytest.approx(
            final["comparisons"]["test"]["with"]["score"]["mean"])
    d = summary["differences"]["llm - rulebank"]
    assert d["per_seed"] == pytest.approx([a - b for a, b in zip(summary["arms"]["llm"]["per_seed"],
                                                                    summary["arms"]["rulebank"]["per_seed"])])
    assert d["low"] <= d["mean"] <= d["high"]
    # same generator budget per run: the two SEO arms ask the generator the same
    # number of times unless candidates repeat (then fewer); the reference trains not at all
    u = summary["usage"]
    assert u["reference"]["generator_requests"] == 0
    assert 0 < u["rulebank"]["generator_requests"] <= 1 * (2 * 1 + (1 + 1) * 2)
    assert 0 < u["llm"]["generator_requests"] <= 1 * (2 * 1 + (1 + 1) * 2)
    assert len(summary["verdict"]) == len(summary["differences"])
    # `seo-lite figures` builds the comparison too, among the other figures of the folder
    from seo_lite.lab.figures import build_all
    built = build_all(runs, root / "all-figures", log=None)
    assert "comparison-trec.png" in {p.name for p in built}
    again = json.loads((root / "all-figures" / "comparison-trec.json").read_text())
    assert {a: v["per_seed"] for a, v in again["arms"].items()} == \
        {a: v["per_seed"] for a, v in summary["arms"].items()}


@pytest.mark.slow
def test_a_mismatched_budget_is_refused(compare_runs, tmp_path):
    import shutil

    root, _ = compare_runs
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs", runs)
    cfg_file = runs / "trec" / "rulebank-s1" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["val_size"] = 3
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="val_size"):
        check_equal_budget(runs / "trec" / "llm-s1", runs / "trec" / "rulebank-s1")
    with pytest.raises(ValueError, match="val_size"):
        summarize(collect(runs)["trec"], n_boot=50)
    msgs: list[str] = []
    assert build_figures(runs, tmp_path / "fig", n_boot=50, log=msgs.append) == []
    assert len(msgs) == 1 and msgs[0].startswith("skipped trec") and "val_size" in msgs[0]


# -- the command line, end to end, with a kill and a resume -----------------------------------------------
def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "seo_lite.cli", *args], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_cli_run_with_the_rulebank_optimizer_is_killed_after_step_1_and_resumes(tmp_path):
    out = tmp_path / "rb"
    env = {**os.environ, "SEO_LITE_CACHE": str(tmp_path / "cache")}
    shared = Path(os.environ["SEO_LITE_CACHE"])
    (tmp_path / "cache").mkdir()
    for sub in ("models", "hashes"):           # reuse the converted checkpoint, not the calls
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cache" / sub).symlink_to(shared / sub, target_is_directory=True)
    args = ["run", "--task", "trec", "--answer-mode", "rank", "--preset", "smoke",
            "--optimizer", "rulebank", "--steps", "2", "--batch-size", "2", "--num-candidates", "2",
            "--val-size", "4", "--train-size", "10", "--dev-size", "2", "--test-size", "4",
            "--out", str(out), "--quiet", "--no-figure"]
    proc = _cli(*args, env=env)
    log = out / "steps.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = log.read_text().splitlines()
    assert len(first) == 1 and not (out / "final.json").exists()

    proc = _cli(*args, env=env)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert "optimizer rulebank" in stdout
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first[0], "step 1 is kept, step 2 is added"
    steps = [json.loads(l) for l in lines]
    bank = set(RULE_BANK["classification"])
    for st in steps:
        assert len(st["candidates"]) == 4
        assert st["usage"]["optimizer"]["calls"] + st["usage"]["optimizer"].get("cache_hits", 0) == 4
        assert st["usage"]["generator"]["calls"] + st["usage"]["generator"].get("cache_hits", 0) > 0
        for c in st["candidates"]:
            assert set(c["experience"]) - set(st["experience_before"]) <= bank
    final = json.loads((out / "final.json").read_text())
    assert final["models"]["optimizer"]["backend"] == "rulebank"
    assert json.loads((out / "config.json").read_text())["optimizer"] == "rulebank"

    # a third run replays from the cache: no model call at all
    proc = _cli(*args, env=env)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    again = json.loads((out / "final.json").read_text())
    assert again["comparisons"] == final["comparisons"]
    calls = sum(u.get("calls", 0) for u in again["invocation"]["usage"].values())
    assert calls == 0, again["invocation"]["usage"]
