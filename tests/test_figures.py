"""Figures are built from run directories only, and the ablation grid resumes.

Most tests make real run directories fast: the real ``run_experiment`` with a
scripted model (answers chosen here; see tests/support/scripted.py) on the real
TREC and FLORES data.  One test runs a tiny grid through papermill with the
embedded model, builds its figures, and checks that running it again executes
nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seo_lite.lab import ablation, figures, grid_runner, noise_study, plots, results
from seo_lite.machinery.params import setup_from_parameters
from seo_lite.machinery.files import save_json
from seo_lite.machinery.runs import safe_run_path
from seo_lite.lab.experiment import run_experiment
from seo_lite.lab.generalization import evaluate_generalization, load_results, transfer_matrix
from seo_lite.method.prompts import EXPERIENCE_HEADER, OPTIMIZER_SYSTEM
from tests.support.scripted import ScriptedLLM

REPO = Path(__file__).resolve().parents[1]
GOOD_RULE = "Questions that start with Who ask for a human."
TREC_LABELS = ("abbreviation", "entity", "description", "human", "location", "number")


# -- a scripted model that behaves like a (very) small LLM, deterministically ----------------------
def _optimizer_reply(r) -> str:
    j = r.sample_index % 3
    if j == 0:
        return f"1. {GOOD_RULE}\n2. <script>alert('x')</script> Be careful with <b>when</b>."
    if j == 1:
        return "I cannot think of rules for this."          # a failed candidate
    return "\n".join(f"{i}. Rule {i}: read the question word." for i in range(1, 7))   # cut by the cap


def _generator_reply(r) -> str:
    user = r.messages[-1]["content"]
    text = user.split("\n\n")[-1]
    return text.upper() if EXPERIENCE_HEADER in user else text     # "translations" differ with rules


def _scores(r) -> list[float]:
    user = r.messages[-1]["content"]
    question = user.rsplit("Question:", 1)[-1].strip().lower()
    if EXPERIENCE_HEADER in user and "human" in user.split("Question:")[0] and question.startswith("who"):
        return [-3.0, -3.0, -3.0, -0.5, -3.0, -3.0]
    return [-0.5] + [-3.0] * 5                                    # "abbreviation", like SmolLM2


def scripted_llm(name: str = "scripted-135m") -> ScriptedLLM:
    def reply(r):
        if r.messages[0]["content"] == OPTIMIZER_SYSTEM:
            return _optimizer_reply(r)
        return _generator_reply(r)
    return ScriptedLLM(reply, score=_scores, name=name)


TINY = {"TASK": "trec", "ANSWER_MODE": "rank", "PRESET": "smoke", "STEPS": 2, "BATCH_SIZE": 2,
        "NUM_CANDIDATES": 3, "VAL_SIZE": 8, "TRAIN_SIZE": 30, "DEV_SIZE": 10, "TEST_SIZE": 12}


def scripted_run(out, **params):
    """A real run directory (run_experiment) made with the scripted model."""
    setup = setup_from_parameters(**{**TINY, **params, "OUT_DIR": str(out)})
    llm = scripted_llm()
    return run_experiment(setup.config, setup.out_dir, generator=llm, optimizer=llm,
                          progress=False)


def in_process(calls: list):
    """A run_grid executor that runs the cell in this process with the scripted model."""
    def execute(notebook, output, params, kernel_name, cwd):
        calls.append(params["OUT_DIR"])
        scripted_run(params["OUT_DIR"], **{k: v for k, v in params.items() if k != "OUT_DIR"})
        Path(output).write_text("{}")
    return execute


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cells = ablation.ablation_grid(TINY, seeds=(0, 1), validation=("fixed", "none"),
                                   comparison_off=True, val_sizes=(4, 16), weak_optimizer=None)
    calls: list = []
    status = grid_runner.run_grid(cells, root / "tiny", execute=in_process(calls), log=None)
    assert [s.status for s in status] == ["ran"] * len(cells)
    return root, root / "tiny", cells


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


# -- figure builders ------------------------------------------------------------------------------
def test_scripted_runs_accept_the_good_rule_and_log_failed_candidates(grid):
    _, grid_dir, _ = grid
    run, final = results.grid_runs(grid_dir)[0][1:]
    cands = run.steps[0].candidates
    assert any(c.failure for c in cands) and any(c.cut for c in cands)
    assert GOOD_RULE in run.experience.rules, "the scripted scores make the Who rule win"
    assert final["comparisons"]["test"]["paired"]["diff"]["mean"] >= 0


def test_each_grid_builder_writes_a_png_from_run_directories(grid, tmp_path):
    _, grid_dir, _ = grid
    paths = [figures.grid_figure("ablations", grid_dir, tmp_path), figures.grid_figure("val-size", grid_dir, tmp_path)]
    rows = [(f"seed {c.seed}", r, f) for c, r, f in results.grid_runs(grid_dir) if c.factor == "baseline"]
    paths.append(figures.learning_curves_figure(rows, tmp_path / "curves.png"))
    paths.append(figures.evolution_figure(rows[0][1], rows[0][2], tmp_path / "evolution.png"))
    for p in paths:
        assert p is not None and _is_png(p), p
    assert {p.name for p in paths} >= {"tiny-ablations.png", "tiny-val-size.png"}


def test_build_all_rebuilds_every_figure_of_a_runs_folder(grid, tmp_path):
    root, _, _ = grid
    paths = figures.build_all(root, tmp_path / "figs", log=None)
    names = sorted(p.name for p in paths)
    assert names == ["tiny-ablations.png", "tiny-experience-evolution.png",
                     "tiny-learning-curves.png", "tiny-val-size.png"]
    assert all(_is_png(p) for p in paths)


def test_build_all_on_an_empty_or_missing_folder_says_what_to_do(tmp_path):
    messages: list[str] = []
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "missing"):
        assert figures.build_all(root, tmp_path / "figs", log=messages.append) == []
    assert len(messages) == 2 and all("no figures built" in m and "seo-lite" in m for m in messages)
    assert not (tmp_path / "figs").exists()


def test_cli_figures_command(grid, tmp_path, capsys):
    from seo_lite.cli import main

    root, _, _ = grid
    assert main(["figures", "--runs", str(root), "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "tiny-ablations.png" in printed and (tmp_path / "cli" / "tiny-ablations.png").is_file()


def test_unfinished_runs_are_left_out(tmp_path):
    out = tmp_path / "runs" / "single"
    scripted_run(out)
    (out / "final.json").rename(out / "final.moved")
    messages: list[str] = []
    assert figures.build_all(tmp_path / "runs", tmp_path / "f", log=messages.append) == []
    (out / "final.moved").rename(out / "final.json")
    paths = figures.build_all(tmp_path / "runs", tmp_path / "f", log=None)
    assert [p.name for p in paths] == ["runs-learning-curves.png"] and _is_png(paths[0])


def _dashed_levels(ax) -> list[float]:
    return [float(l.get_ydata()[0]) for l in ax.get_lines()
            if l.get_linestyle() == "--" and len(set(l.get_ydata())) == 1]


def _visible_xticks(ax) -> list[float]:
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]


def test_run_figures_show_whole_steps_and_the_chance_level_of_labelled_tasks(tmp_path):
    import matplotlib.pyplot as plt
    from seo_lite.machinery.runs import load_run

    out = tmp_path / "run"
    scripted_run(out)                                    # TREC: six labels, steps 0..2
    run, final = load_run(out)
    assert results.chance_level(final) == pytest.approx(1 / len(TREC_LABELS))
    fig = plots.learning_curve(out)
    ticks = _visible_xticks(fig.axes[0])
    assert len(ticks) >= 2 and all(t == int(t) for t in ticks), ticks
    assert _dashed_levels(fig.axes[0]) == [pytest.approx(1 / 6)]
    plt.close(fig)

    unlabelled = {**final, "task": {**final["task"], "labels": None}}     # e.g. translation, QA
    assert results.chance_level(unlabelled) is None
    fig = plots.learning_curve(run, final=unlabelled)
    assert _dashed_levels(fig.axes[0]) == []
    plt.close(fig)
    fig = plots.learning_curve(run, final=final, chance=None)              # the caller can turn it off
    assert _dashed_levels(fig.axes[0]) == []
    plt.close(fig)

    fig, ax = plots.figure()
    plots.before_after(final, run.config, ax=ax)
    assert _dashed_levels(ax) == [pytest.approx(1 / 6)]
    plt.close(fig)
    assert _is_png(plots.run_summary(out))

    series = [{"label": f"seed {i}", "x": [c["step"] for c in final["curve"]],
               "y": [c["dev"] for c in final["curve"]]} for i in range(2)]
    ax = plots.learning_curves(series, ax=plots.figure()[1], chance=results.chance_level(final))
    ticks = _visible_xticks(ax)
    assert all(t == int(t) for t in ticks) and _dashed_levels(ax) == [pytest.approx(1 / 6)]
    plt.close(ax.figure)


def test_footnotes_name_the_models_and_never_secrets():
    from seo_lite import SEOConfig

    cfg = SEOConfig(generator="openai:m", generator_options={"base_url": "http://h/v1", "api_key": "sk-123"},
                    optimizer="embedded", optimizer_options={"load_in_4bit": True})
    note = plots.models_note_many([(cfg, {"models": {"optimizer": {"model": "SmolLM2-135M-Instruct"}}})])
    assert "openai:m" in note and "base_url=http://h/v1" in note
    assert "embedded (SmolLM2-135M-Instruct, load_in_4bit=True)" in note
    assert "sk-123" not in note


def test_transfer_matrix_and_ood_figures_from_result_files(tmp_path):
    llm = scripted_llm()
    for task in ("flores:en-de", "flores:de-en"):
        run_dir = tmp_path / task.replace(":", "_")
        scripted_run(run_dir, TASK=task, ANSWER_MODE=None, STEPS=1, VAL_SIZE=4, TRAIN_SIZE=16,
                     DEV_SIZE=4, TEST_SIZE=6, CONFIG_OVERRIDES={"task_options": {"max_new_tokens": 8}})
        pair = f"transfer_{task.replace(':', '_')}"
        res = evaluate_generalization(run_dir, pair, size=6, generator=llm)
        assert Path(res["path"]).is_file() and len(res["results"]) == 5
        split_ids = json.loads((run_dir / "splits.json").read_text())
        for target in res["results"]:
            assert res["results"][target]["n"] == 6
        assert set(split_ids["test"]) and res["in_domain"]["n"] == 6
    results = load_results(tmp_path)
    m = transfer_matrix(results)
    assert m["rows"] == ["flores:en-de", "flores:de-en"]
    assert m["cols"][0] == "de" and set(m["cols"]) == {"de", "fr", "cs", "ru", "zh", "ja"}
    assert m["cells"][("flores:de-en", "fr")]["task"] == "flores:fr-en"
    assert m["cells"][("flores:en-de", "de")]["in_domain"]
    p = figures.transfer_figure(results, tmp_path / "figs")
    assert p.name == "transfer-matrix.png" and _is_png(p)
    assert figures.ood_figure(results, tmp_path / "figs") is None      # no OOD pair among these


def test_ood_and_noise_figures(tmp_path):
    from seo_lite import Experience, get_task, load_splits

    llm = scripted_llm()
    run_dir = tmp_path / "hotpot"
    scripted_run(run_dir, TASK="hotpotqa_closedbook", ANSWER_MODE=None, STEPS=1, VAL_SIZE=4,
                 TRAIN_SIZE=16, DEV_SIZE=4, TEST_SIZE=6)
    res = evaluate_generalization(run_dir, size=5, generator=llm)          # the one pair of this task
    assert res["pair"] == "ood_hotpotqa_to_2wiki" and res["results"]["2wikimultihopqa"]["n"] == 5
    p = figures.ood_figure(load_results(tmp_path), tmp_path / "figs")
    assert p.name == "ood.png" and _is_png(p)

    task = get_task("trec", answer_mode="rank")
    train = load_splits(task, train=30, dev=0, test=0, seed=0).train
    noise = noise_study.validation_noise(task, llm, train, {"none": Experience(), "who": Experience([GOOD_RULE])},
                                      sizes=[2, 4, 8], draws=6, exclude=train[:2])
    rows = noise_study.noise_summary(noise)
    assert [r["size"] for r in rows] == [2, 4, 8] and all(0 <= r["better wins"] <= 1 for r in rows)
    path = save_json(noise, tmp_path / "study" / "validation_noise_trec.json")
    png = figures.noise_figure(path, tmp_path / "figs")
    assert png.name == "validation-noise-trec.png" and _is_png(png)
    names = sorted(q.name for q in figures.build_all(tmp_path, tmp_path / "all", log=None))
    assert "ood.png" in names and "validation-noise-trec.png" in names


# -- the grid driver ---------------------------------------------------------------------------------
def test_grid_names_are_safe_and_secrets_are_refused(tmp_path):
    cells = ablation.grid_cells(ablation.grid_spec("trec-score"))
    assert len(cells) == 14 and len({c.name for c in cells}) == 14
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)
    for c in cells:
        assert safe_run_path(tmp_path, c.name).parent == tmp_path.resolve()
    weak = [c for c in cells if c.factor == "optimizer"]
    assert weak and all(c.params["OPTIMIZER_OPTIONS"] == {"load_in_4bit": True} for c in weak)
    with pytest.raises(ValueError, match="secret"):
        ablation.ablation_grid({"GENERATOR_OPTIONS": {"api_key": "sk-x"}})
    with pytest.raises(ValueError, match="unknown run_seo parameter"):
        ablation.ablation_grid({"TASKS": "trec"})


def test_setup_keeps_secret_options_out_of_the_config():
    setup = setup_from_parameters(GENERATOR="openai:m", OPTIMIZER=None,
                                  GENERATOR_OPTIONS={"base_url": "http://x/v1", "api_key": "sk-abc123"},
                                  TASK="trec", PRESET="smoke")
    saved = setup.config.to_dict()                                  # what config.json holds
    assert saved["generator_options"] == {"base_url": "http://x/v1"} == saved["optimizer_options"]
    assert setup.config.optimizer == "openai:m"
    assert setup.secrets() == [("api_key", "sk-abc123")] * 2        # the optimizer is the generator
    assert "sk-abc123" not in repr(setup.config) and "sk-abc123" not in json.dumps(setup.config.to_dict())
    assert "sk-abc123" not in setup.describe() and "sk-abc123" not in repr(setup)
    assert setup.config.answer_mode is None, "auto: no label ranking through an API"
    local = setup_from_parameters(TASK="trec", PRESET="smoke")
    assert local.config.answer_mode == "rank"
    assert setup_from_parameters(GENERATOR_OPTIONS='{"batch_size": 4}').config.generator_options == {"batch_size": 4}


def test_interrupted_grid_resumes_without_redoing_finished_cells(tmp_path):
    cells = ablation.ablation_grid(TINY, seeds=(0,), validation=("none",), comparison_off=True,
                                   weak_optimizer=None)
    assert [c.name for c in cells] == ["baseline_seed0", "validation-none_seed0",
                                       "comparison_trials-off_seed0"]
    calls: list = []
    run_cell = in_process(calls)

    def interrupt_second(notebook, output, params, kernel_name, cwd):
        if "validation-none" in params["OUT_DIR"]:
            from seo_lite import train

            setup = setup_from_parameters(**params)
            llm = scripted_llm()

            def stop(rec):
                raise KeyboardInterrupt
            train(setup.config, run_dir=setup.out_dir, generator=llm, optimizer=llm, progress=False,
                  on_step=stop)                       # one step logged, then "Ctrl-C"
        run_cell(notebook, output, params, kernel_name, cwd)

    grid_dir = tmp_path / "g"
    with pytest.raises(KeyboardInterrupt):
        grid_runner.run_grid(cells, grid_dir, execute=interrupt_second, log=None)
    half = grid_dir / "validation-none_seed0"
    assert (half / "steps.jsonl").is_file() and not grid_runner.is_finished(half)
    first_line = (half / "steps.jsonl").read_text().splitlines()[0]

    status = grid_runner.run_grid(cells, grid_dir, execute=run_cell, log=None)
    assert [s.status for s in status] == ["done", "ran", "ran"]
    ex = grid_runner.executions(grid_dir)
    assert [(e["cell"], e["status"], e["resumed"]) for e in ex] == [
        ("baseline_seed0", "ran", False), ("validation-none_seed0", "interrupted", False),
        ("validation-none_seed0", "ran", True), ("comparison_trials-off_seed0", "ran", False)]
    assert (half / "steps.jsonl").read_text().splitlines()[0] == first_line     # step 1 not redone
    again = grid_runner.run_grid(cells, grid_dir, execute=run_cell, log=None)
    assert [s.status for s in again] == ["done"] * 3 and len(grid_runner.executions(grid_dir)) == 4


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    cells = ablation.ablation_grid(TINY, seeds=(0,), validation=(), comparison_off=True, weak_optimizer=None)
    calls: list = []
    ok = in_process(calls)

    def flaky(notebook, output, params, kernel_name, cwd):
        if "comparison" in params["OUT_DIR"]:
            raise RuntimeError("model server down")
        ok(notebook, output, params, kernel_name, cwd)

    status = grid_runner.run_grid(cells, tmp_path / "g", execute=flaky, log=None)
    assert [s.status for s in status] == ["ran", "failed"] and "model server down" in status[1].error
    with pytest.raises(RuntimeError, match="comparison_trials-off_seed0"):
        grid_runner.run_grid(cells, tmp_path / "g", execute=flaky, log=None, stop_on_error=True)


@pytest.mark.slow
def test_tiny_grid_through_papermill_builds_figures_and_resumes(tmp_path, monkeypatch, capfd,
                                                                fresh_call_cache):
    """The real thing: run_seo.ipynb executed by papermill with the embedded model."""
    base = {"TASK": "trec", "ANSWER_MODE": "rank", "PRESET": "smoke", "STEPS": 1, "BATCH_SIZE": 1,
            "NUM_CANDIDATES": 2, "VAL_SIZE": 2, "TRAIN_SIZE": 6, "DEV_SIZE": 2, "TEST_SIZE": 3,
            "OPT_MAX_NEW_TOKENS": 16}
    cells = ablation.ablation_grid(base, seeds=(0,), validation=("none",), comparison_off=False,
                                   weak_optimizer=None)
    grid_dir = tmp_path / "runs" / "papermill-grid"
    status = grid_runner.run_grid(cells, grid_dir, log=None)
    assert [s.status for s in status] == ["ran", "ran"], [s.error for s in status]
    # the kernels' own console stays quiet (no unencrypted-TCP warning on every start)
    assert "without encryption" not in capfd.readouterr().err
    for c in cells:
        nb = json.loads((grid_dir / f"{c.name}.ipynb").read_text())
        injected = [cell for cell in nb["cells"] if "injected-parameters" in cell["metadata"].get("tags", [])]
        assert injected and str(grid_dir / c.name) in "".join(injected[0]["source"])
        assert grid_runner.is_finished(grid_dir / c.name)
    mtimes = {p: p.stat().st_mtime_ns for p in grid_dir.glob("*.ipynb")}
    paths = figures.build_all(tmp_path / "runs", tmp_path / "figures", log=None)
    assert {p.name for p in paths} >= {"papermill-grid-ablations.png", "papermill-grid-learning-curves.png"}
    assert all(_is_png(p) for p in paths)
    again = grid_runner.run_grid(cells, grid_dir, log=None)
    assert [s.status for s in again] == ["done", "done"]
    assert len(grid_runner.executions(grid_dir)) == 2                       # nothing executed twice
    assert {p: p.stat().st_mtime_ns for p in grid_dir.glob("*.ipynb")} == mtimes


def test_calibration_cells_give_the_four_conditions_and_their_contrasts(tmp_path):
    """Calibration x SEO: per seed, no experience and SEO alone come from the
    baseline cell, calibration alone and both from the calibration cell, and
    each contrast is a difference of those scores on the same test examples."""
    cells = ablation.ablation_grid(TINY, seeds=(0, 1, 2), validation=(), comparison_off=False,
                                   weak_optimizer=None, calibrations=("batch",))
    assert sorted({(c.factor, c.level) for c in cells}) == [("baseline", "baseline"),
                                                           ("calibration", "batch")]
    assert all(c.params.get("CALIBRATION") == "batch" for c in cells if c.factor == "calibration")
    grid_runner.run_grid(cells, tmp_path / "cal", execute=in_process([]), log=None)
    got = results.calibration_contrasts(tmp_path / "cal")
    assert got["seeds"] == [0, 1, 2]
    runs = results.grid_runs(tmp_path / "cal")
    finals = {(c.factor, c.seed): f for c, _, f in runs}
    assert {r.config.calibration for c, r, _ in runs if c.factor == "calibration"} == {"batch"}
    test = lambda f, k: f["comparisons"]["test"][k]["score"]["mean"]
    for i, seed in enumerate(got["seeds"]):
        base, cal = finals[("baseline", seed)], finals[("calibration", seed)]
        assert got["scores"]["no experience"][i] == test(base, "without")
        assert got["scores"]["batch calibration alone"][i] == test(cal, "without")
        assert got["scores"]["SEO + batch calibration"][i] == test(cal, "with")
        # "SEO over batch" is the calibration run's own paired gain
        assert got["contrasts"]["SEO added to batch calibration"][i] == pytest.approx(
            cal["comparisons"]["test"]["paired"]["diff"]["mean"])
    assert list(got["scores"]) == ["no experience", "SEO alone", "batch calibration alone",
                                   "SEO + batch calibration"]
    assert list(got["contrasts"]) == ["SEO vs no experience", "batch calibration vs no experience",
                                      "SEO added to batch calibration", "batch calibration added to SEO"]
    path = figures.grid_figure("calibration", tmp_path / "cal", tmp_path / "figs")
    assert path.name == "cal-calibration.png" and _is_png(path)


def test_calibration_figure_needs_calibration_cells(grid, tmp_path):
    _, grid_dir, _ = grid
    assert results.calibration_contrasts(grid_dir) is None
    assert figures.grid_figure("calibration", grid_dir, tmp_path) is None


def test_generalization_results_of_several_seeds_merge_into_one_estimate(tmp_path):
    """Three seeds of one pair: one bar/cell per target, the mean over seeds with a
    t-interval across them, each seed's own result kept beside it."""
    from seo_lite.lab.generalization import merge_seeds
    from seo_lite.method.stats import across_seeds

    llm = scripted_llm()
    for seed in (0, 1, 2):
        run_dir = tmp_path / f"hotpot-s{seed}"
        scripted_run(run_dir, TASK="hotpotqa_closedbook", ANSWER_MODE=None, STEPS=1, VAL_SIZE=4,
                     TRAIN_SIZE=16, DEV_SIZE=4, TEST_SIZE=6, SEED=seed)
        evaluate_generalization(run_dir, size=5, generator=llm)
    results = load_results(tmp_path)
    assert len(results) == 3
    (merged,) = merge_seeds(results)
    assert merged["seeds"] == [0, 1, 2] and len(merged["experience"]) == 3
    per_seed = [r["results"]["2wikimultihopqa"]["diff"]["mean"]
                for r in sorted(results, key=lambda r: r["config"]["seed"])]
    got = merged["results"]["2wikimultihopqa"]
    assert got["per_seed"]["diff"] == per_seed and got["n"] == 5
    assert got["diff"] == across_seeds(per_seed).to_dict()
    assert merged["in_domain"]["per_seed"]["with"] == [
        r["in_domain"]["with"]["mean"] for r in sorted(results, key=lambda r: r["config"]["seed"])]
    assert merge_seeds(results[:1]) == results[:1]               # one seed: unchanged
    p = figures.ood_figure(results, tmp_path / "figs")
    assert p.name == "ood.png" and _is_png(p)


def test_the_study_keeps_qa_targets_when_it_restricts_translation_languages():
    from seo_lite.lab.generalization import CPU_STUDY, study_targets

    assert study_targets("ood_hotpotqa_to_2wiki", ("fr", "zh")) == ["2wikimultihopqa"]
    assert study_targets("transfer_flores_de-en", ("fr", "zh")) == ["flores:fr-en", "flores:zh-en"]
    assert len(study_targets("transfer_flores_de-en")) == 5
    # every pair of the CPU study has something to evaluate on
    assert all(study_targets(p, CPU_STUDY["langs"]) for p in CPU_STUDY["pairs"])


# -- figures a reader can read: one palette, chance lines, clipped intervals, the step diagram --------
def _bar_colours(ax) -> dict[str, tuple]:
    """x tick label (one line) -> the facecolor of the bar at that x."""
    from matplotlib.colors import to_rgba

    labels = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    bars = sorted((p for p in ax.patches if p.get_width() > 0.4), key=lambda p: p.get_x())
    return {lab: to_rgba(p.get_facecolor(), 1) for lab, p in zip(labels, bars)}


def _line_colours(ax) -> dict[str, tuple]:
    from matplotlib.colors import to_rgba

    return {l.get_label(): to_rgba(l.get_color(), 1) for l in ax.get_lines()}


def _errorbar_ys(ax) -> list[float]:
    from matplotlib.container import ErrorbarContainer

    return [float(y) for c in ax.containers if isinstance(c, ErrorbarContainer)
            for coll in c.lines[2] for seg in coll.get_segments() for _, y in seg]


def test_one_colour_per_condition_in_every_figure(grid, tmp_path):
    """"SEO" and "fixed D" look the same in the ablation bars, the learning
    curves and the calibration figure; chapter 00's "with E" is SEO too."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    _, grid_dir, _ = grid
    abl = plots.ablations(results.ablation(grid_dir))
    bars = _bar_colours(abl.axes[0])
    assert bars["SEO (baseline)"] == to_rgba(plots.COLOURS["SEO"])
    assert bars["fixed D"] == to_rgba(plots.COLOURS["fixed D"]) != bars["SEO (baseline)"]
    assert _bar_colours(abl.axes[1]) == bars                    # the gain panel: the same colours
    rows = results.grid_runs(grid_dir)
    curves = plots.curves(results.curves([(results.label(c), r, f, results.condition(c))
                                          for c, r, f in rows], average=True))
    lines = _line_colours(curves.axes[0])
    assert lines["SEO (baseline) (mean of 2)"] == bars["SEO (baseline)"]
    assert lines["fixed D (mean of 2)"] == bars["fixed D"]
    assert len({lines[k] for k in lines if "mean of" in k}) == len([k for k in lines if "mean of" in k])
    cells = ablation.ablation_grid(TINY, seeds=(0, 1, 2), validation=(), comparison_off=False,
                                   weak_optimizer=None, calibrations=("batch",))
    grid_runner.run_grid(cells, tmp_path / "cal", execute=in_process([]), log=None)
    cal = plots.calibration(results.calibration_contrasts(tmp_path / "cal"))
    cal_bars = _bar_colours(cal.axes[0])
    assert cal_bars["SEO alone"] == bars["SEO (baseline)"]
    assert cal_bars["no experience"] == to_rgba(plots.COLOURS["no experience"])
    assert cal_bars["batch calibration alone"] != cal_bars["SEO + batch calibration"]
    # a difference has the colour of what it adds
    assert _bar_colours(cal.axes[1])["SEO added to batch calibration"] == bars["SEO (baseline)"]
    dist = plots.label_distribution({"without E": {"a": 1}, "with E": {"b": 1}}, ["a", "b"])
    assert [to_rgba(p.get_facecolor()) for p in dist.axes[0].patches] == [
        cal_bars["no experience"]] * 2 + [bars["SEO (baseline)"]] * 2
    assert plots.colour("a run of mine") == plots.colour("a run of mine") in plots.OTHERS
    for fig in (abl, curves, cal, dist):
        plt.close(fig)


def test_every_classification_axis_has_a_chance_line_and_scores_stay_in_0_1(grid, tmp_path):
    import matplotlib.pyplot as plt

    _, grid_dir, _ = grid
    abl = plots.ablations(results.ablation(grid_dir))
    assert _dashed_levels(abl.axes[0]) == [pytest.approx(1 / 6)]       # TREC: 6 labels
    assert _dashed_levels(abl.axes[1]) == []                            # a difference has no chance level
    rows = results.grid_runs(grid_dir)
    curves = plots.curves(results.curves([(f"seed {c.seed}", r, f) for c, r, f in rows[:2]]))
    assert all(_dashed_levels(ax) == [pytest.approx(1 / 6)] for ax in curves.axes)
    # an interval that reaches below 0 (few seeds, scores near 0) is drawn clipped to [0, 1]
    fig, ax = plots.figure()
    plots.ablation_bars([{"label": "SEO", "condition": "SEO", "values": [0.0, 0.1],
                          "estimate": {"mean": 0.05, "low": -0.6, "high": 0.7, "n": 2}}], ax=ax)
    ys = _errorbar_ys(ax)
    assert min(ys) == 0.0 and max(ys) == pytest.approx(0.7)
    plots.paired_bars([{"label": "x", "with": {"mean": 0.95, "low": 0.8, "high": 1.3},
                        "without": {"mean": 0.02, "low": -0.2, "high": 0.1}}], ax=ax)
    assert 0.0 <= min(_errorbar_ys(ax)) and max(_errorbar_ys(ax)) <= 1.0
    study = {"task": "trec", "models": "generator scripted", "sizes": [2, 4], "draws": 6, "pool": 30,
             "experiences": ["no rules", "who"], "pool_means": {"no rules": 0.05, "who": 0.1},
             "scores": {"2": {"no rules": [0, 0, 0, 0, 0, 0.5], "who": [0, 0, 0.5, 0, 0, 0.5]},
                        "4": {"no rules": [0, 0.25, 0, 0, 0, 0], "who": [0.25, 0, 0.25, 0, 0, 0]}}}
    path = save_json(study, tmp_path / "validation_noise_trec.json")
    noise = plots.validation_noise(results.noise(path))
    assert min(_errorbar_ys(noise.axes[0])) == 0.0                       # mean - sd < 0, clipped
    assert _dashed_levels(noise.axes[0])[-1] == pytest.approx(1 / 6)
    for f in (abl, curves, fig, noise):
        plt.close(f)


def test_saved_canvases_hold_their_content_not_a_long_footnote(tmp_path):
    """A footnote is wrapped to the figure's width, so a one-panel figure is not
    saved on a canvas twice its width (ood.png and transfer-matrix.png were)."""
    import matplotlib.pyplot as plt

    fig, ax = plots.figure(5.0, 3.8)
    plots.paired_bars([{"label": "a", "with": {"mean": 0.2, "low": 0.1, "high": 0.3},
                        "without": {"mean": 0.3, "low": 0.2, "high": 0.4}}], ax=ax)
    plots.footnote(fig, "generator embedded | " + "a very long note about seeds and intervals " * 8)
    path = plots.save(fig, tmp_path / "one.png")
    height, width = plt.imread(path).shape[:2]
    assert width <= 5.0 * 150 * 1.1, width


def test_experience_evolution_labels_differ_where_the_rules_differ():
    import matplotlib.pyplot as plt

    start = "Sentence: The enormous comic potential of an actor needing their entire body to "
    rules = [start + "sell a joke is wasted here.", start + "sell a joke is the point.",
             start + "sell a joke is wasted here. ", "A short rule."]
    fig = plots.experience_evolution([[], rules[:2], rules[1:]], [True, True])
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert len(labels) == len(set(labels)) == 4, labels
    assert all(len(l) <= 80 for l in labels) and labels[3] == "A short rule."
    assert "wasted" in labels[0] and "point" in labels[1]            # the part that differs is shown
    plt.close(fig)


def _texts(ax) -> str:
    return "\n".join(t.get_text() for t in ax.texts)


def test_step_diagram_draws_trials_candidates_validation_and_selection(grid, tmp_path):
    """Drawn from a real (scripted-model) step record: every candidate with its
    state, one cell per example of D_t for E_t and each new candidate, the decision."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    _, grid_dir, _ = grid
    run = results.grid_runs(grid_dir)[0][1]
    rec = run.steps[0]
    fig = plots.step_diagram(rec, config=run.config)
    ax, text = fig.axes[0], _texts(fig.axes[0])
    fresh = [c for c in rec.candidates if c.valid and not c.duplicate_of]
    assert any(not c.valid for c in rec.candidates) and any(c.duplicate_of for c in rec.candidates)
    for c in rec.candidates:
        assert f"{c.id} (from {c.example_id}" in text
    assert "parse failure" in text and "same rules as" in text
    for tr in rec.trials:
        assert tr["example_id"] in text and f"δ = {tr['effect']:+.2f}" in text
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == len(rec.validation_ids) * (1 + len(fresh))
    assert f"v = {rec.decision.current_score:.2f}" in text
    assert (f"accepted {rec.decision.chosen}" if rec.decision.accepted else "E_t kept") in text
    assert "trec | generator embedded" in "\n".join(t.get_text() for t in fig.texts)   # the config names the models
    # the same drawing from the dict steps.jsonl holds, and through the run directory
    line = (Path(run.run_dir) / "steps.jsonl").read_text().splitlines()[0]
    assert _texts(plots.step_diagram(json.loads(line), ax=plots.figure()[1])) == text
    assert _is_png(figures.step_figure(run.run_dir, 0, tmp_path / "step.png"))
    with pytest.raises(ValueError, match="no step 9"):
        figures.step_figure(run.run_dir, 9)
    plt.close("all")


@pytest.mark.slow
def test_step_diagram_of_a_real_embedded_step(embedded, tmp_path):
    """One step of the real embedded model (tiny budget), logged and drawn."""
    import matplotlib.pyplot as plt
    from seo_lite import SEOConfig, train

    config = SEOConfig.preset("smoke", task="sst2", answer_mode="rank", steps=1, batch_size=1,
                              num_candidates=2, val_size=2, train_size=6, dev_size=2, test_size=2,
                              opt_max_new_tokens=16)
    train(config, run_dir=tmp_path / "run", generator=embedded, optimizer=embedded, progress=False)
    path = figures.step_figure(tmp_path / "run", 0)
    assert path == tmp_path / "run" / "figures" / "step-0.png" and _is_png(path)
    rec = results.load_run(tmp_path / "run")[0].steps[0]
    text = _texts(plots.step_diagram(rec).axes[0])
    assert all(c.id in text for c in rec.candidates) and f"v = {rec.decision.current_score:.2f}" in text
    plt.close("all")


def test_the_baseline_comparison_uses_the_same_palette_and_a_chance_line(monkeypatch, tmp_path):
    """comparison-<task>.png (seo_lite.lab.baselines): SEO is SEO's blue, no
    experience its grey, the reference and the rule bank their own colours."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from seo_lite.lab.baselines import comparison_figure

    est = lambda m: {"mean": m, "low": m - 0.6, "high": m + 0.6, "per_seed": [m, m]}
    summary = {"arms": {a: est(m) for a, m in (("none", 0.5), ("reference", 0.7), ("llm", 0.75),
                                               ("rulebank", 0.7))},
               "differences": {k: est(0.2) for k in ("reference - none", "llm - none", "rulebank - none",
                                                     "llm - rulebank")},
               "usage": {"llm": {"generator_requests": 10}, "rulebank": {"generator_requests": 9}},
               "seeds": [0, 1], "n_test_per_seed": [100], "config": {"task": "sst2"}}
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or Path(path))
    comparison_figure("sst2", summary, tmp_path)
    left, right = drawn[0].axes[:2]
    bars = _bar_colours(left)
    assert bars["no experience"] == to_rgba(plots.COLOURS["no experience"])
    assert bars["SEO, LLM optimizer"] == to_rgba(plots.COLOURS["SEO"])
    assert bars["SEO, rule bank"] == to_rgba(plots.COLOURS["rule bank"])
    assert bars["reference (hand-written)"] == to_rgba(plots.COLOURS["reference"])
    assert _bar_colours(right)["SEO-LLM - none"] == bars["SEO, LLM optimizer"]
    assert _dashed_levels(left) == [pytest.approx(0.5)] and _dashed_levels(right) == []   # SST-2: 2 labels
    assert 0.0 <= min(_errorbar_ys(left)) and max(_errorbar_ys(left)) <= 1.0
    plt.close(drawn[0])
