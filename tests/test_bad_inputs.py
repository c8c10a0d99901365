"""The bad-input catalogue: one table, one test.

Each row is something a user, a dataset, a model or a crashed disk can hand
seo_lite, and what must come of it:

* ``error=(Type, pattern)`` -- a clear error: that type (one the CLI prints
  as a single line, no traceback) with a message that says what is wrong;
* ``check=fn`` -- not an error but a *recorded, visible* outcome: a failed
  candidate in the log with its raw reply and reason, a warning naming the
  damaged file, a counted cache error -- and in every case the right result,
  never a silent wrong one.

Models are scripted (``tests/support``) and the data are the shared samples
or small broken copies of them, so the whole table runs in seconds.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from seo_lite import SEOConfig, train
from seo_lite.cli import _user_errors
from seo_lite.method.config import ConfigError
from seo_lite.machinery.data import DataError, load_splits
from seo_lite.llm import CacheError, CallCache, LLMError, LoglikelihoodRequest, make_llm
from seo_lite.machinery.runs import RunError, load_run
from seo_lite.machinery.build import prepare
from seo_lite.tasks import get_task
from seo_lite.tasks.base import TaskError
from tests.support.scripted import ScriptedLLM
from tests.support.seo_child import Stepper

TREC = "trec_test_300.jsonl"


def cfg(**kw) -> SEOConfig:
    base = dict(task="trec", answer_mode="rank", steps=1, generator="scripted:gen",
                optimizer="scripted:opt", seed=2)
    return SEOConfig.preset("smoke", **{**base, **kw})


def seo(tmp: Path, *, config: SEOConfig | None = None, gen=None, opt=None, run_dir="run",
        cache=None):
    """Train with scripted models; returns the SEORun."""
    config = config or cfg()
    return train(config, generator=gen or Stepper("gen", cache), optimizer=opt or Stepper("opt", cache),
                 run_dir=tmp / run_dir if run_dir else None, progress=False)


def reply(text: str) -> ScriptedLLM:
    return ScriptedLLM(lambda r: text, name="opt")


def broken_data(tmp: Path, monkeypatch, edit: Callable[[list[str]], list[str]]) -> Path:
    """A copy of the TREC sample with its lines edited, made the data folder."""
    folder = tmp / "data"
    folder.mkdir()
    from seo_lite.machinery.data import data_folder

    src = data_folder() / TREC
    lines = src.read_text(encoding="utf-8").splitlines()
    (folder / TREC).write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    monkeypatch.setenv("SEO_LITE_DATA", str(folder))
    return folder


def splits(tmp, monkeypatch):
    return load_splits("trec", train=16, dev=8, test=8)


def logged(tmp: Path, run_dir="run") -> list[dict]:
    return [json.loads(x) for x in (tmp / run_dir / "steps.jsonl").read_text().splitlines()]


def finished_run(tmp: Path, steps=2, **kw) -> Path:
    seo(tmp, config=cfg(steps=steps, **kw))
    return tmp / "run"


# -- the cases ------------------------------------------------------------------------------
def data_not_json(tmp, mp):
    broken_data(tmp, mp, lambda ls: ls[:1] + ['{"id": "x", "text": "What is'] + ls[1:])
    splits(tmp, mp)


def data_missing_field(tmp, mp):
    def edit(ls):
        row = json.loads(ls[3])
        del row["label_coarse"]
        return ls[:3] + [json.dumps(row)] + ls[4:]
    broken_data(tmp, mp, edit)
    splits(tmp, mp)


def data_bad_label(tmp, mp):
    def edit(ls):
        row = json.loads(ls[0])
        row["label_coarse"] = "COLOUR"
        return [json.dumps(row)] + ls[1:]
    broken_data(tmp, mp, edit)
    splits(tmp, mp)


def data_not_an_object(tmp, mp):
    broken_data(tmp, mp, lambda ls: ls[:5] + ['["a", "list"]'] + ls[5:])
    splits(tmp, mp)


def data_empty(tmp, mp):
    broken_data(tmp, mp, lambda ls: [])
    splits(tmp, mp)


def data_duplicate_id(tmp, mp):
    broken_data(tmp, mp, lambda ls: ls + [ls[0]])
    splits(tmp, mp)


def not_text_data(kind: str):
    """A TREC data file that is not UTF-8 text: Latin-1, gzip with a .jsonl name, random bytes."""
    def act(tmp, mp):
        import gzip
        import random

        from seo_lite.machinery.data import data_folder

        text = (data_folder() / TREC).read_text(encoding="utf-8")
        folder = tmp / "data"
        folder.mkdir()
        data = {"latin1": lambda: text.replace("?", "¿").encode("latin-1", errors="replace"),
                "gzip": lambda: gzip.compress(text.encode("utf-8")),
                "random": lambda: random.Random(0).randbytes(4096)}[kind]()
        (folder / TREC).write_bytes(data)
        mp.setenv("SEO_LITE_DATA", str(folder))
        splits(tmp, mp)
    return act


def data_folder_missing(tmp, mp):
    mp.setenv("SEO_LITE_DATA", str(tmp / "nowhere"))
    splits(tmp, mp)


def split_larger_than_data(tmp, mp):
    prepare(cfg(train_size=400, val_size=8))


def d_t_larger_than_train(tmp, mp):
    cfg(train_size=16, val_size=20)


def k_zero(tmp, mp):
    cfg(num_candidates=0)


def max_rules_zero(tmp, mp):
    cfg(max_rules=0)


def max_rules_negative(tmp, mp):
    cfg(max_rules=-3)


def batch_larger_than_train(tmp, mp):
    cfg(batch_size=17, train_size=16)


def unknown_preset(tmp, mp):
    SEOConfig.preset("huge")


def unknown_config_key(tmp, mp):
    SEOConfig.from_dict({"task": "trec", "stepz": 3})


def unknown_task(tmp, mp):
    prepare(cfg(task="trec-fine"))


def unknown_language(tmp, mp):
    get_task("flores:en-xx")


def unknown_wmt_direction(tmp, mp):
    get_task("wmt23:en-fr")


def score_mode_without_labels(tmp, mp):
    get_task("hotpotqa", answer_mode="rank")


def unknown_model(tmp, mp):
    prepare(cfg(generator="gpt-9"))


def unknown_model_option(tmp, mp):
    make_llm("openai:m", base_url="http://127.0.0.1:9/v1", temprature=0.5)


def score_mode_on_an_api_model(tmp, mp):
    make_llm("openai:m", base_url="http://127.0.0.1:9/v1", cache=None).loglikelihood(
        LoglikelihoodRequest("x", ("a", "b")))


def cache_folder_is_a_file(tmp, mp):
    (tmp / "f").write_text("x")
    CallCache(tmp / "f" / "calls")


def run_dir_from_another_config(tmp, mp):
    finished_run(tmp)
    seo(tmp, config=cfg(steps=2, seed=3))


def run_dir_is_a_file(tmp, mp):
    (tmp / "run").write_text("not a folder")
    seo(tmp)


def run_dir_inside_a_file(tmp, mp):
    (tmp / "file").write_text("x")
    seo(tmp, run_dir="file/run")


def run_dir_not_empty(tmp, mp):
    (tmp / "run").mkdir()
    (tmp / "run" / "thesis.tex").write_text("precious")
    seo(tmp)


def config_json_not_json(tmp, mp):
    run = finished_run(tmp)
    (run / "config.json").write_text('{"task": "trec", "steps": 2,')
    seo(tmp, config=cfg(steps=2))


def config_json_wrong_keys(tmp, mp):
    run = finished_run(tmp)
    (run / "config.json").write_text(json.dumps({"tasks": "trec"}))
    seo(tmp, config=cfg(steps=2))


def splits_changed(tmp, mp):
    run = finished_run(tmp)
    ids = json.loads((run / "splits.json").read_text())
    ids["train"] = ids["train"][::-1]
    (run / "splits.json").write_text(json.dumps(ids))
    seo(tmp, config=cfg(steps=2))


def log_line_corrupt_in_the_middle(tmp, mp):
    run = finished_run(tmp, steps=3)
    lines = (run / "steps.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\x00garbage" + lines[1][60:]
    (run / "steps.jsonl").write_text("".join(lines))
    seo(tmp, config=cfg(steps=4))


def log_line_not_a_step(tmp, mp):
    run = finished_run(tmp, steps=3)
    lines = (run / "steps.jsonl").read_text().splitlines(keepends=True)
    lines[1] = json.dumps({"step": 1, "note": "hand-edited"}) + "\n"
    (run / "steps.jsonl").write_text("".join(lines))
    seo(tmp, config=cfg(steps=4))


def log_step_repeated(tmp, mp):
    run = finished_run(tmp, steps=2)
    lines = (run / "steps.jsonl").read_text().splitlines(keepends=True)
    (run / "steps.jsonl").write_text(lines[0] + lines[0] + lines[1])
    seo(tmp, config=cfg(steps=3))


def report_on_a_corrupt_log(tmp, mp):
    run = finished_run(tmp, steps=3)
    lines = (run / "steps.jsonl").read_text().splitlines(keepends=True)
    (run / "steps.jsonl").write_text(lines[0] + "{not json}\n" + lines[2])
    load_run(run)


# outcomes that are recorded, not raised
def corrupt_checkpoint(tmp, mp):
    run = finished_run(tmp, steps=2)
    want = json.loads((run / "checkpoint.json").read_text())
    (run / "checkpoint.json").write_text('{"completed_steps": 2, "experi')
    resumed = seo(tmp, config=cfg(steps=2))
    return want, json.loads((run / "checkpoint.json").read_text()), resumed


def check_corrupt_checkpoint(out, caught):
    want, rebuilt, resumed = out
    assert rebuilt == want and len(resumed.steps) == 2
    assert any("checkpoint.json is corrupt; rebuilt" in str(w.message) for w in caught)


def corrupt_cache_entry(tmp, mp):
    cache = CallCache(tmp / "cache")
    first = seo(tmp, config=cfg(steps=1), cache=cache, run_dir=None)
    victim = sorted(cache.root.glob("??/*.json"))[5]
    victim.write_text(victim.read_text()[:50])          # a torn entry
    gen, opt = Stepper("gen", cache), Stepper("opt", cache)
    again = seo(tmp, config=cfg(steps=1), gen=gen, opt=opt, run_dir=None)
    return first, again, gen, opt, victim


def wrong_shape_cache_entry(tmp, mp):
    cache = CallCache(tmp / "cache")
    first = seo(tmp, config=cfg(steps=1), cache=cache, run_dir=None)
    for p in sorted(cache.root.glob("??/*.json")):
        entry = json.loads(p.read_text())
        if entry["payload"]["kind"] == "score":         # valid JSON, right key, wrong answer shape
            entry["value"]["logprobs"] = entry["value"]["logprobs"][:2]
            p.write_text(json.dumps(entry))
            break
    gen, opt = Stepper("gen", cache), Stepper("opt", cache)
    again = seo(tmp, config=cfg(steps=1), gen=gen, opt=opt, run_dir=None)
    return first, again, gen, opt, p


def check_cache_recomputed(out, caught):
    first, again, gen, opt, victim = out
    strip = lambda s: {k: v for k, v in s.to_dict().items() if k not in ("seconds", "usage")}
    assert [strip(s) for s in again.steps] == [strip(s) for s in first.steps], "same answers"
    assert gen.answered + opt.answered == 1, "only the damaged entry was asked again"
    errors = gen.usage.total().cache_errors + opt.usage.total().cache_errors
    assert errors == 1, "the damaged entry is counted"
    assert any(victim.name in str(w.message) and "recomputing" in str(w.message) for w in caught)
    json.loads(victim.read_text())                     # and it was rewritten whole


def empty_optimizer_reply(tmp, mp):
    return seo(tmp, opt=reply("")), logged(tmp)


def no_list_reply(tmp, mp):
    return seo(tmp, opt=reply("I think the model should try harder next time.")), logged(tmp)


def check_failed_candidates(reason):
    def check(out, caught):
        run, log = out
        cands = log[0]["candidates"]
        assert cands and all(c["failure"] == reason and c["experience"] is None for c in cands)
        assert not run.steps[0].decision.accepted and "unparseable" in run.steps[0].decision.reason
        assert run.experience.rules == ()
    return check


def huge_optimizer_reply(tmp, mp):
    text = "\n".join(f"{i}. rule {i}: " + "very " * 400 + "long" for i in range(1, 3000))
    return seo(tmp, opt=reply(text)), logged(tmp), len(text)


def check_huge_reply(out, caught):
    run, log, size = out
    c = log[0]["candidates"][0]
    assert len(c["experience"]) == 3, "cut to max_rules"
    assert all(len(r) <= 303 for r in c["experience"]), "each rule cut to 300 characters"
    assert any(f"reply of {size} characters" in n for n in c["notes"])
    assert any("kept the first 3" in n for n in c["notes"]) and c["cut"]


def empty_generator_answer(tmp, mp):
    gen = ScriptedLLM(lambda r: "", name="gen")
    run = seo(tmp, config=cfg(answer_mode="generate"), gen=gen, opt=reply("1. Say a label."))
    return run, logged(tmp)


def check_empty_answer(out, caught):
    run, log = out
    for t in log[0]["trials"]:
        assert t["with"]["text"] == "" and t["with"]["answer"] == "" and t["with"]["score"] == 0.0
    assert run.steps[0].current_scores == [0.0] * 6, "an empty answer scores 0, visibly"


@dataclass
class Case:
    id: str
    act: Callable[[Path, Any], Any]
    error: tuple[type, str] | None = None
    check: Callable[[Any, list], None] | None = None


CASES = [
    Case("data file line not JSON", data_not_json, (DataError, r"line 2: not valid JSON")),
    Case("data row missing a field", data_missing_field,
         (DataError, r"line 4: missing field\(s\) 'label_coarse'")),
    Case("data row with an unknown label", data_bad_label, (DataError, r"line 1: 'label_coarse' must be one of")),
    Case("data line not an object", data_not_an_object, (DataError, r"line 6: expected a JSON object")),
    Case("data file empty", data_empty, (DataError, r"is empty")),
    Case("data ids repeated", data_duplicate_id, (DataError, r"duplicate id")),
    Case("data folder missing", data_folder_missing, (DataError, r"does not exist")),
    Case("data file in Latin-1", not_text_data("latin1"),
         (DataError, rf"{TREC}: not UTF-8 text \(byte 0xbf at offset \d+, line 1\); it looks like Latin-1")),
    Case("data file gzip-compressed, named .jsonl", not_text_data("gzip"),
         (DataError, rf"{TREC}: not UTF-8 text, the file is gzip-compressed")),
    Case("data file of random bytes", not_text_data("random"),
         (DataError, rf"{TREC}: not UTF-8 text \(byte 0x[0-9a-f]{{2}} at offset \d+, line \d+\); "
                     r"it looks like binary data")),
    Case("splits larger than the data", split_larger_than_data, (DataError, r"has only 300")),
    Case("|D_t| larger than the training split", d_t_larger_than_train, (ConfigError, r"val_size")),
    Case("k = 0", k_zero, (ConfigError, r"num_candidates \(k\) must be >= 1")),
    Case("max_rules = 0", max_rules_zero, (ConfigError, r"max_rules must be >= 1")),
    Case("max_rules < 0", max_rules_negative, (ConfigError, r"max_rules must be >= 1, got -3")),
    Case("mini-batch larger than the training split", batch_larger_than_train, (ConfigError, r"batch_size")),
    Case("unknown preset", unknown_preset, (ConfigError, r"unknown preset 'huge'")),
    Case("unknown config key", unknown_config_key, (ConfigError, r"unknown config key\(s\) stepz")),
    Case("unknown task", unknown_task, (TaskError, r"unknown task 'trec-fine'")),
    Case("unknown language", unknown_language, (TaskError, r"xx")),
    Case("unknown WMT23 direction", unknown_wmt_direction, (TaskError, r"WMT23 directions")),
    Case("label ranking on a task without labels", score_mode_without_labels, (TaskError, r"no label set")),
    Case("unknown model", unknown_model, (LLMError, r"unknown model spec 'gpt-9'; valid forms")),
    Case("unknown model option", unknown_model_option, (LLMError, r"unknown option\(s\) temprature")),
    Case("label ranking on an API model", score_mode_on_an_api_model, (LLMError, r"cannot compute log-likelihoods")),
    Case("cache folder inside a file", cache_folder_is_a_file, (CacheError, r"cannot use cache folder")),
    Case("run directory from another config", run_dir_from_another_config,
         (RunError, r"different config \(seed: run has 2, asked 3\)")),
    Case("run directory is a file", run_dir_is_a_file, (RunError, r"is not a folder")),
    Case("run directory inside a file", run_dir_inside_a_file, (RunError, r"is a file, not a folder")),
    Case("run directory holds other files", run_dir_not_empty, (RunError, r"not empty.*thesis.tex")),
    Case("config.json not JSON", config_json_not_json, (RunError, r"not a readable SEO config")),
    Case("config.json with unknown keys", config_json_wrong_keys, (RunError, r"not a readable SEO config")),
    Case("data changed under a run", splits_changed, (RunError, r"other data splits")),
    Case("steps.jsonl corrupt line in the middle", log_line_corrupt_in_the_middle,
         (RunError, r"line 2 is corrupt")),
    Case("steps.jsonl line that is not a step", log_line_not_a_step,
         (RunError, r"line 2 is not a step record")),
    Case("steps.jsonl step written twice", log_step_repeated, (RunError, r"line 2 holds step 0, expected 1")),
    Case("report on a corrupt log", report_on_a_corrupt_log, (RunError, r"line 2 is corrupt")),
    Case("corrupt checkpoint", corrupt_checkpoint, check=check_corrupt_checkpoint),
    Case("corrupt cache entry", corrupt_cache_entry, check=check_cache_recomputed),
    Case("cache entry of the wrong shape", wrong_shape_cache_entry, check=check_cache_recomputed),
    Case("empty optimizer reply", empty_optimizer_reply, check=check_failed_candidates("empty reply")),
    Case("optimizer reply with no list", no_list_reply,
         check=check_failed_candidates("no numbered or bulleted rules found")),
    Case("huge optimizer reply", huge_optimizer_reply, check=check_huge_reply),
    Case("empty generator answer", empty_generator_answer, check=check_empty_answer),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_clear_error_or_a_visible_record(case, tmp_path, monkeypatch):
    assert (case.error is None) != (case.check is None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.error:
            kind, pattern = case.error
            with pytest.raises(kind, match=pattern) as e:
                case.act(tmp_path, monkeypatch)
            assert isinstance(e.value, _user_errors()), "the CLI would print a traceback"
            assert "Traceback" not in str(e.value) and len(str(e.value)) < 2000
        else:
            case.check(case.act(tmp_path, monkeypatch), caught)


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 15 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("kind", ["latin1", "gzip", "random"])
def test_a_data_file_that_is_not_text_is_one_line_and_exit_2_on_the_command_line(
        kind, tmp_path, monkeypatch, capsys):
    from seo_lite.cli import main

    with pytest.raises(DataError):                    # sets SEO_LITE_DATA to the broken copy
        not_text_data(kind)(tmp_path, monkeypatch)
    code = main(["run", "--task", "trec", "--preset", "smoke", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("seo-lite: error: ") and err.count("\n") == 1, err
    assert f"{TREC}: not UTF-8 text" in err and "Traceback" not in err
