"""The run explorer: its views are plain data and strings, tested without a browser."""
from __future__ import annotations

import builtins
import sys

import pytest

from seo_lite.lab import explorer
from seo_lite.machinery.runs import load_run
from tests.test_figures import GOOD_RULE, scripted_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "run"
    scripted_run(out)
    return out


def test_step_view_holds_everything_a_step_did(run_dir):
    run, _ = load_run(run_dir)
    ex = explorer.example_texts(run)
    v = explorer.step_view(run, 0, ex)
    assert v["step"] == 0 and v["steps"] == 2 and v["experience_before"] == []
    assert len(v["trials"]) == run.config.batch_size
    for tr in v["trials"]:
        assert tr["input"] and tr["gold"] in explorer.example_texts(run)[tr["example_id"]].answers
        assert tr["effect"] == tr["with"]["score"] - tr["without"]["score"]
    assert len(v["candidates"]) == run.config.batch_size * run.config.num_candidates
    failed = [c for c in v["candidates"] if c["failure"]]
    cut = [c for c in v["candidates"] if c["cut"]]
    assert failed and cut and all(c["rules"] is None for c in failed)
    assert v["accepted"] and v["chosen"] and GOOD_RULE in v["experience_after"]
    assert sum(c["chosen"] for c in v["candidates"]) == 1
    assert len(v["validation_ids"]) == run.config.val_size
    with pytest.raises(IndexError):
        explorer.step_view(run, 5)


def test_text_view_shows_the_decision_the_trials_and_failures(run_dir):
    run, _ = load_run(run_dir)
    text = explorer.render_text(explorer.step_view(run, 0, explorer.example_texts(run)))
    assert "== step 1 of 2" in text and "decision: ACCEPTED" in text
    assert "FAILED: no numbered or bulleted rules found" in text
    assert "cut by the rule cap" in text and "delta" in text
    assert "I cannot think of rules" in text                      # the raw reply is shown
    assert f"1. {GOOD_RULE}" in text.split("experience after")[1]


def test_widget_prints_the_step_the_slider_shows(run_dir, capsys):
    pytest.importorskip("ipywidgets")
    w = explorer.explore(run_dir, widgets=True)      # ipywidgets.interactive: a slider and its output
    slider = w.children[0]
    assert (slider.min, slider.max, slider.value) == (1, 2, 1)
    assert "== step 1 of 2" in capsys.readouterr().out
    slider.value = 2
    out = capsys.readouterr().out
    assert "== step 2 of 2" in out and "<script>alert" in out     # plain text, never HTML


def test_explore_accepts_a_folder_a_run_or_a_result(run_dir, capsys):
    run, _ = load_run(run_dir)
    for obj in (run_dir, str(run_dir), run, type("Result", (), {"run": run})()):
        assert explorer.explore(obj, widgets=False, steps=[2]) is None
        out = capsys.readouterr().out
        assert "== step 2 of 2" in out and "== step 1" not in out
    assert explorer.explore(run_dir, widgets=True) is not None          # the widget
    with pytest.raises(TypeError):
        explorer.explore(42)


def test_explore_prints_text_when_widgets_are_missing(run_dir, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets" or name.startswith("ipywidgets."):
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_widgets)
    assert not explorer.widgets_available()
    assert explorer.explore(run_dir) is None                    # widgets=None: detected
    assert explorer.explore(run_dir, widgets=True) is None      # asked for, but missing: text
    out = capsys.readouterr().out
    assert out.count("== step 1 of 2") == 2 and out.count("== step 2 of 2") == 2


def test_outside_a_kernel_widgets_are_not_used(run_dir):
    assert not explorer.widgets_available()          # pytest is no Jupyter kernel


def test_a_run_without_steps(tmp_path, capsys):
    from seo_lite import SEOConfig
    from seo_lite.method.seo import SEORun
    from seo_lite.method.experience import Experience

    empty = SEORun(SEOConfig(), [], Experience())
    assert explorer.explore(empty, widgets=False, examples=None) is None
    assert "no finished step" in capsys.readouterr().out
