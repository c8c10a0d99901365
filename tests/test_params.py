"""One knob layer: SEOConfig's fields are the notebook parameters and the CLI
flags (with help and defaults), and the CLI says "run directory" only once a
run has begun.  Models are scripted; the data are the shipped samples."""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

from seo_lite.machinery import build, params
from seo_lite.cli import build_parser, main
from seo_lite.method.config import SEOConfig, knob
from seo_lite.method.prompts import OPTIMIZER_SYSTEM
from tests.support.scripted import ScriptedLLM

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "run_seo.ipynb"


def test_every_config_field_is_a_parameter_and_a_flag_with_help():
    names = [f.name for f in dataclasses.fields(SEOConfig)]
    assert list(params.KNOBS) == names
    assert {n.upper() for n in names} <= set(params.RUN_PARAMETERS)
    flags = {a.dest: a for a in _run_parser()._actions}
    for k in params.KNOBS.values():
        assert k.help, f"SEOConfig.{k.field} has no help text (give it one with knob(...))"
        assert k.field in flags and k.flag in flags[k.field].option_strings
        assert "(default " in flags[k.field].help


def test_a_new_field_becomes_a_knob_without_editing_the_layer(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Bigger(SEOConfig):
        temperature_decay: float = knob(1.0, "multiply opt_temperature by this each step", "gamma")

    monkeypatch.setattr(params, "SEOConfig", Bigger)
    knobs = params._knobs()
    k = knobs["temperature_decay"]
    assert (k.param, k.flag, k.type, k.symbol) == ("TEMPERATURE_DECAY", "--temperature-decay", float, "gamma")


def _run_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["run"]


def test_run_help_explains_each_flag_with_the_papers_symbol_and_default():
    text = " ".join(_run_parser().format_help().split())
    for flag, symbol, default in (("--steps", "T", "6; presets smoke 2, paper 20"),
                                  ("--batch-size", "n", "2; presets smoke 2, paper 4"),
                                  ("--num-candidates", "k", "2; presets smoke 2, paper 4"),
                                  ("--val-size", "|D_t|", "16; presets smoke 6, paper 32")):
        i = text.index(flag + " ", text.index("options:"))
        assert f"{symbol}: " in text[i:i + 200] and f"default {default}" in text[i:i + 250], text[i:i + 250]
    assert "default the generator" in text and "--no-comparison-trials" in text


def test_flags_and_notebook_parameters_build_the_same_config():
    """Every knob set to a non-default value, once as flags and once as parameters."""
    values = dict(task="trec", answer_mode="generate",
                  task_options={"max_new_tokens": 12}, generator="hf:some/model",
                  optimizer="openai:opt", generator_options={"batch_size": 4},
                  optimizer_options={"base_url": "http://h/v1"}, data_source="hub",
                  train_size=30, dev_size=5, test_size=7, steps=3, batch_size=3,
                  num_candidates=4, val_size=9, max_rules=4, initial_experience=["Be brief."],
                  gen_temperature=0.1, opt_temperature=1.1, opt_top_p=0.9, opt_max_new_tokens=50,
                  opt_prefix="-", min_improvement=0.01, validation="fixed",
                  comparison_trials=False, bootstrap=50, seed=7)
    if "calibration" in params.KNOBS:                 # a field another change adds
        values["calibration"] = "none"
    assert set(values) == set(params.KNOBS), "the test covers every field"
    argv = ["run", "--preset", "smoke"]
    for name, v in values.items():
        k = params.KNOBS[name]
        if k.type is bool:
            argv.append(k.flag if v else "--no-" + k.flag[2:])
        elif k.type is dict:
            for key, val in v.items():
                argv += [k.flag, f"{key}={json.dumps(val) if not isinstance(val, str) else val}"]
        elif k.type is list:
            for item in v:
                argv += [k.flag, item]
        else:
            argv += [k.flag, str(v)]
    from_flags = params.setup_from_args(build_parser().parse_args(argv)).config
    from_nb = params.setup_from_parameters(PRESET="smoke",
                                           **{k.param: values[k.field] for k in params.KNOBS.values()}).config
    assert from_flags == from_nb
    assert from_nb.to_dict() == SEOConfig.preset("smoke", **values).to_dict()


def test_the_optimizer_is_the_generator_unless_named_on_every_path():
    gen = {"base_url": "http://h/v1", "api_key": "sk-zzz"}
    nb = params.setup_from_parameters(GENERATOR="openai:m", GENERATOR_OPTIONS=gen, PRESET="smoke").config
    cli = params.setup_from_args(build_parser().parse_args(
        ["run", "--preset", "smoke", "--generator", "openai:m",
         "--generator-option", "base_url=http://h/v1", "--generator-option", "api_key=sk-zzz"])).config
    for cfg in (nb, cli):
        assert cfg.optimizer == "openai:m" and build.same_model(cfg)
        assert "sk-zzz" not in json.dumps(cfg.to_dict()) and "sk-zzz" not in repr(cfg)
    assert nb == cli
    named = params.setup_from_parameters(GENERATOR="openai:m", OPTIMIZER="embedded").config
    assert named.optimizer_options == {} and not build.same_model(named)


def test_auto_answer_mode_is_available_everywhere_and_resolved_before_the_config():
    cli = params.setup_from_args(build_parser().parse_args(["run", "--answer-mode", "auto"])).config
    assert cli.answer_mode == "rank"                              # embedded, SST-2 has labels
    assert params.setup_from_parameters().config.answer_mode == "rank"   # the notebook's default
    assert params.setup_from_parameters(GENERATOR="openai:m").config.answer_mode is None
    assert params.setup_from_parameters(TASK="hotpotqa_closedbook").config.answer_mode is None
    # a config built in Python may still say "auto": the task is built the same way
    assert build.make_task(SEOConfig(answer_mode="auto")).answer_mode == "rank"
    assert build.make_task(SEOConfig(answer_mode="auto", generator="openai:m")).answer_mode == "generate"


def test_the_old_answer_mode_name_score_is_accepted_and_pointed_to_rank(capsys):
    """'score' means only the task metric now; label ranking is answer_mode='rank'."""
    cli = params.setup_from_args(build_parser().parse_args(
        ["run", "--task", "sst2", "--answer-mode", "score"])).config
    assert cli.answer_mode == "rank"
    assert "--answer-mode rank" in capsys.readouterr().err
    old = SEOConfig.from_dict({**SEOConfig(task="sst2").to_dict(), "answer_mode": "score"})
    assert old == SEOConfig(task="sst2", answer_mode="rank"), "a run directory written before resumes"
    assert build.make_task(old).answer_mode == "rank"
    quiet = params.setup_from_args(build_parser().parse_args(["run", "--answer-mode", "rank"]))
    assert quiet.config.answer_mode == "rank" and "note" not in capsys.readouterr().err


def test_run_seo_notebook_parameters_agree_with_the_library():
    cell = next(c for c in json.loads(NOTEBOOK.read_text())["cells"]
                if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    assert set(assigned) <= set(params.RUN_PARAMETERS)
    assert {"STEPS", "BATCH_SIZE", "NUM_CANDIDATES", "VAL_SIZE", "OUT_DIR", "PRESET"} <= set(assigned)
    for name, node in assigned.items():
        value = ast.literal_eval(node)
        knob_ = params.KNOBS.get(name.lower())
        library = params.RUN_PARAMETERS[name]
        same = value == library or (knob_ is not None and value == knob_.default())
        assert same, f"{name} = {value!r} in run_seo.ipynb, but the library's default is {library!r}"


# -- the CLI's run directory line ---------------------------------------------------------------
def _scripted(_config, **_):
    def reply(r):
        if r.messages[0]["content"] == OPTIMIZER_SYSTEM:
            return "1. Questions starting with 'how many' ask for a number."
        return "number"
    llm = ScriptedLLM(reply, name="scripted-cli")
    return llm, llm


def test_cli_names_the_run_directory_only_once_the_run_has_begun(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "make_models", _scripted)
    monkeypatch.setenv("SEO_LITE_CACHE", "off")
    out = tmp_path / "run"
    argv = ["run", "--task", "trec", "--answer-mode", "generate", "--preset", "smoke", "--steps",
            "1", "--out", str(out), "--quiet", "--no-figure"]
    monkeypatch.setenv("SEO_LITE_DATA", str(tmp_path / "no-data-here"))
    (tmp_path / "no-data-here").mkdir()
    assert main(argv) == 2
    failed = capsys.readouterr()
    assert "error" in failed.err and "run directory" not in failed.out + failed.err
    assert not out.exists()

    monkeypatch.delenv("SEO_LITE_DATA")
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.count("run directory:") == 1 and "run the same command again to resume" in first
    assert main(argv) == 0
    assert "resuming after step 1" in capsys.readouterr().out


def test_the_result_prints_one_scale_per_line(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "make_models", _scripted)
    monkeypatch.setenv("SEO_LITE_CACHE", "off")
    from seo_lite.lab.experiment import run_experiment

    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="generate", steps=1)
    text = str(run_experiment(cfg, tmp_path / "run", progress=False, figure=False))
    assert "(mean per-example score from 0 to 1" in text
    metric_lines = [l for l in text.splitlines() if " metrics" in l]
    assert metric_lines and all("0-100 scale" in l and " score " not in l for l in metric_lines)
    # accuracy is printed in percent: "number" is right for the NUM questions only
    acc = float(metric_lines[-1].split("accuracy ")[1].split(" -> ")[1].split(",")[0])
    assert 1.0 < acc < 100.0
