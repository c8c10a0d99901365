"""Grids take any model and budget, come from a user's file, fan out through
submitit (its local executor here; Slurm as the sbatch file it would submit),
print one command per cell for other schedulers, report their status and
price themselves before they start."""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from seo_lite.lab import ablation, fanout, grid_runner
from seo_lite.machinery.dryrun import estimate_cost
from seo_lite.machinery.params import setup_from_parameters

SMOKE = {"TASK": "trec", "ANSWER_MODE": "rank", "PRESET": "smoke", "STEPS": 1, "BATCH_SIZE": 1,
         "NUM_CANDIDATES": 2, "VAL_SIZE": 2, "TRAIN_SIZE": 6, "DEV_SIZE": 2, "TEST_SIZE": 3,
         "OPT_MAX_NEW_TOKENS": 16}
LLAMA = "hf:meta-llama/Llama-2-7b-chat-hf"


def test_a_grid_file_in_json_or_toml_is_a_grid(tmp_path):
    spec = {"base": {"TASK": "sst2", "PRESET": "classroom"}, "seeds": [0, 1],
            "validation": ["none"], "comparison_off": False,
            "weak_optimizer": "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0",
            "weak_optimizer_options": {"load_in_4bit": True},
            "factors": {"temperature": {"hot": {"GEN_TEMPERATURE": 1.2}}}}
    (tmp_path / "g.json").write_text(json.dumps(spec))
    (tmp_path / "g.toml").write_text(
        'seeds = [0, 1]\nvalidation = ["none"]\ncomparison_off = false\n'
        'weak_optimizer = "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0"\n'
        '[base]\nTASK = "sst2"\nPRESET = "classroom"\n[weak_optimizer_options]\nload_in_4bit = true\n'
        '[factors.temperature.hot]\nGEN_TEMPERATURE = 1.2\n')
    cells = ablation.grid_cells(ablation.grid_spec(str(tmp_path / "g.json")))
    assert cells == ablation.grid_cells(ablation.grid_spec(str(tmp_path / "g.toml")))
    assert [c.name for c in cells if c.seed == 0] == [
        "baseline_seed0", "validation-none_seed0", "optimizer-hf-TinyLlama-TinyLlama-1.1B-Chat-v1.0_seed0",
        "temperature-hot_seed0"]
    weak = next(c for c in cells if c.factor == "optimizer")
    assert weak.params["OPTIMIZER"] == "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert weak.params["OPTIMIZER_OPTIONS"] == {"load_in_4bit": True}
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "levels": 3}))
    with pytest.raises(ValueError, match="unknown grid key.*levels"):
        ablation.grid_spec(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="unknown run_seo parameter.*TEMP"):
        ablation.grid_cells({"factors": {"t": {"x": {"TEMP": 1}}}})


def _grid_json(grid_dir) -> dict:
    return {c["name"]: c for c in json.loads((Path(grid_dir) / "grid.json").read_text())["cells"]}


def test_model_and_budget_flags_change_every_cell_and_commands_run_only_pending_cells(tmp_path, capsys):
    argv = ["smoke", "--runs", str(tmp_path), "--generator", LLAMA, "--generator-option",
            "load_in_4bit=true", "--optimizer", LLAMA, "--preset", "classroom", "--set", "steps=2",
            "--weak-optimizer", "embedded-hot", "--seeds", "0", "1", "--print-commands"]
    assert ablation.main(argv) == 0
    cells = _grid_json(tmp_path / "smoke")
    assert len(cells) == 6 and {c["seed"] for c in cells.values()} == {0, 1}
    for c in cells.values():
        p = c["params"]
        assert (p["GENERATOR"], p["GENERATOR_OPTIONS"], p["PRESET"], p["STEPS"]) == \
               (LLAMA, {"load_in_4bit": True}, "classroom", 2)
        config = setup_from_parameters(**p).config          # what the cell's config.json will hold
        assert config.generator == LLAMA and config.steps == 2 and config.generator_options == {"load_in_4bit": True}
    assert cells["optimizer-embedded-hot_seed1"]["params"]["OPT_TEMPERATURE"] == 1.6
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    argv0 = shlex.split(lines[0])
    assert argv0[1:5] == ["-m", "seo_lite.lab.grid_runner", "cell", str((tmp_path / "smoke").resolve())]
    assert [shlex.split(l)[5] for l in lines] == list(cells)
    done = tmp_path / "smoke" / shlex.split(lines[0])[5]
    done.mkdir()
    (done / "final.json").write_text("{}")
    assert ablation.main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5, "a finished cell gets no command"


def test_bad_grid_input_is_one_clear_line(tmp_path, capsys):
    for argv, message in ((["nope"], "unknown grid 'nope'"),
                          (["smoke", "--set", "stepz=2"], "unknown field(s) stepz"),
                          (["smoke", "--generator-option", "novalue"], "KEY=VALUE")):
        with pytest.raises(SystemExit) as e:
            ablation.main(argv + ["--runs", str(tmp_path)])
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_grid_dry_run_is_the_sum_of_each_cells_estimate(tmp_path, capsys):
    assert ablation.main(["smoke", "--runs", str(tmp_path), "--dry-run", "--generator", LLAMA,
                          "--price-per-mtok", "0.2,0.4", "--tokens-per-second", "2000,25"]) == 0
    out = capsys.readouterr().out
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()[1:] if re.match(r"^\S+\s+[\d,]+\s", l)}
    num = lambda s: float(s.replace(",", ""))
    cells = ablation.grid_cells(ablation.GRIDS["smoke"], base={"GENERATOR": LLAMA})
    for cell in cells:
        est = estimate_cost(setup_from_parameters(**cell.params).config, price_per_mtok="0.2,0.4",
                            tokens_per_second="2000,25")
        calls, prompt, new, usd, hours = map(num, rows[cell.name])
        assert (calls, prompt, new) == (est.total("calls"), est.prompt_tokens, est.total("new_tokens"))
        assert usd == pytest.approx(est.cost_usd, abs=0.01) and hours == pytest.approx(est.seconds / 3600, abs=0.01)
    total = [l for l in out.splitlines() if l.startswith("total")][0].split()
    assert num(total[3]) == sum(num(r[0]) for r in rows.values() if r)
    assert not (tmp_path / "smoke").exists(), "a dry run writes nothing"


def test_slurm_gets_one_array_of_pending_cells_with_the_given_resources(tmp_path, capsys):
    submitit = pytest.importorskip("submitit")
    from submitit.slurm.slurm import _get_default_parameters

    logs = tmp_path / "shared" / "logs"
    argv = ["smoke", "--runs", str(tmp_path), "--engine", "slurm", "--print-sbatch", "--logs", str(logs),
            "--slurm-partition", "gpu", "--gpus-per-node", "1", "--cpus-per-task", "4",
            "--timeout-min", "600", "--mem-gb", "32", "--array-parallelism", "1"]
    assert ablation.main(argv) == 0
    sbatch = capsys.readouterr().out
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --time=600", "#SBATCH --mem=32GB", "#SBATCH --array=0-1%1",
                 "#SBATCH --job-name=seo-grid", f"#SBATCH --output={logs}/%A_%a_0_log.out"):
        assert line in sbatch, line
    assert re.search(r"#SBATCH --signal=USR2@\d+", sbatch), "submitit's timeout signal: requeue"
    params = fanout.slurm_parameters(argparse.Namespace(
        slurm_partition="gpu", gpus_per_node=1, cpus_per_task=4, timeout_min=600, mem_gb=32,
        array_parallelism=1))
    assert set(params) <= set(_get_default_parameters()), "SlurmExecutor.update_parameters accepts them"
    assert submitit.helpers.Checkpointable in fanout.CellRunner.__mro__


def test_a_preempted_cell_job_is_requeued_as_the_same_call():
    pytest.importorskip("submitit")
    runner = fanout.CellRunner()
    args = ("/shared/runs/g", [{"name": "baseline_seed0"}], "/repo/notebooks/run_seo.ipynb", "python3", {})
    again = runner.checkpoint(*args)                 # what submitit calls on timeout or preemption
    assert again.function is runner and again.args == args   # the cell resumes from its run directory


def test_workers_split_the_threads_and_pin_one_gpu_each():
    assert fanout.worker_env(1, 2, cpus=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert fanout.worker_env(0, 3, cpus=16)["OMP_NUM_THREADS"] == "5"
    assert fanout.worker_env(5, 8, cpus=64, gpus=4)["CUDA_VISIBLE_DEVICES"] == "1"


def test_status_shows_finished_running_failed_and_pending_cells(tmp_path, capsys):
    cells = ablation.ablation_grid(SMOKE, seeds=(0,), validation=("none", "fixed"), comparison_off=True,
                                   val_sizes=(4,), weak_optimizer=None)
    grid, nb = grid_runner.prepare_grid(cells, tmp_path / "g", in_process=True)

    def execute(notebook, output, params, kernel_name, cwd):
        if "validation-none" in params["OUT_DIR"]:
            raise RuntimeError("CUDA out of memory\n  at step 3: CUDA out of memory. Tried 2 GiB")
        Path(params["OUT_DIR"]).mkdir()
        (Path(params["OUT_DIR"]) / "final.json").write_text("{}")

    for c in cells[:2]:
        grid_runner.run_cell(c, grid, nb, execute=execute, log=None)
    grid_runner._log_execution(grid, cells[2], 0.0, grid_runner.RUNNING, False)   # this process: alive
    dead = dict(grid_runner.executions(grid)[0], cell=cells[3].name, status="running", pid=2 ** 22 + 7)
    with open(grid / grid_runner.EXECUTIONS_FILE, "a") as f:
        f.write(json.dumps(dead) + "\n")                  # a worker SIGKILLed mid-cell
    assert grid_runner.main(["status", str(grid)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "1 finished, 1 running, 2 failed, 1 pending"
    assert "failed   validation-none_seed0  RuntimeError: at step 3: CUDA out of memory. Tried 2 GiB" in out
    assert f"failed   {cells[3].name}  its worker died" in out
    assert f"running  {cells[2].name}  on {grid_runner.HOST}" in out and f"pending  {cells[4].name}" in out
    assert [e["status"] for e in grid_runner.executions(grid)] == ["ran", "failed"]


def _decisions(run_dir: Path) -> tuple:
    final = json.loads((run_dir / "final.json").read_text())
    steps = [json.loads(l) for l in (run_dir / "steps.jsonl").read_text().splitlines()]
    return ([s.get("accepted") for s in steps], (run_dir / "experience.md").read_text(),
            final["comparisons"]["test"]["with"]["score"]["mean"])


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_call_cache")
def test_three_smoke_cells_through_submitits_local_executor_then_a_process_pool(tmp_path, capsys):
    pytest.importorskip("submitit")
    cells = ablation.ablation_grid(SMOKE, seeds=(0,), validation=("none", "fixed"), comparison_off=False,
                                   weak_optimizer=None)
    assert len(cells) == 3
    grid = tmp_path / "runs" / "local"
    done = fanout.fan_out(cells, grid, engine="local", workers=2, log=lambda s: None)
    assert sorted(d[:2] for d in done) == sorted((c.name, "ran") for c in cells), done
    ex = grid_runner.executions(grid)
    assert sorted(e["cell"] for e in ex) == sorted(c.name for c in cells), "each cell ran once"
    assert len({e["pid"] for e in ex}) == 2, "in two worker processes"
    assert list((grid / "submitit-logs").glob("*_log.out")), "submitit's logs beside the grid"
    assert all(not v for k, v in grid_runner.grid_status(grid).items() if k != "finished")
    assert fanout.fan_out(cells, grid, engine="local", workers=2, log=lambda s: None) == []
    cmd = tmp_path / "runs" / "commands"                  # a printed command runs exactly its cell
    fanout.fan_out(cells, cmd, engine="commands", log=lambda s: None)
    line = capsys.readouterr().out.splitlines()[0]
    subprocess.run(shlex.split(line), check=True, cwd=Path(__file__).resolve().parents[1])
    assert {k: len(v) for k, v in grid_runner.grid_status(cmd).items()} == \
           {"finished": 1, "running": 0, "failed": 0, "pending": 2}
    assert _decisions(cmd / cells[0].name) == _decisions(grid / cells[0].name)
    pool = tmp_path / "runs" / "pool"                      # same cells, warm cache: no model loads
    assert {d[1] for d in fanout.fan_out(cells, pool, engine="pool", workers=2, log=lambda s: None)} == {"ran"}
    for c in cells:
        assert _decisions(grid / c.name) == _decisions(pool / c.name)


def test_the_studies_take_models_and_budget_as_flags(tmp_path, capsys):
    from seo_lite.lab import baselines, generalization

    assert baselines.main(["run", "--dry-run", "--task", "trec", "--seeds", "0", "--preset", "smoke",
                           "--generator", LLAMA, "--generator-option", "load_in_4bit=true",
                           "--optimizer", "embedded", "--set", "steps=2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"trec/{arm}-s0" in out for arm in baselines.ARMS) and "total (3 runs)" in out
    plan = dict(baselines.comparison_plan(["trec"], [0], tmp_path, preset="smoke", generator=LLAMA,
                                          generator_options={"load_in_4bit": True}, optimizer="embedded",
                                          overrides={"steps": 2, "optimizer_options": {"temperature": 1.0}}))
    llm = plan[tmp_path / "trec" / "llm-s0"]
    assert (llm.generator, llm.generator_options, llm.optimizer, llm.optimizer_options, llm.steps) == \
           (LLAMA, {"load_in_4bit": True}, "embedded", {"temperature": 1.0}, 2)
    assert plan[tmp_path / "trec" / "rulebank-s0"].optimizer == "rulebank"

    assert generalization.main(["--dry-run", "--pairs", "ood_hotpotqa_to_2wiki", "--seeds", "0", "1",
                                "--generator", LLAMA, "--preset", "smoke", "--set", "steps=2"]) == 0
    out = capsys.readouterr().out
    assert "hotpotqa_closedbook-s0" in out and "hotpotqa_closedbook-s1" in out and "total (2 runs)" in out
    study = {**generalization.CPU_STUDY, "pairs": ["ood_hotpotqa_to_2wiki"], "seeds": (0,),
             "values": {"generator": LLAMA, "optimizer": "embedded", "steps": 2, "data_source": "hub"}}
    cfg = generalization.study_plan(tmp_path, **study)[0]["config"]
    assert (cfg.generator, cfg.optimizer, cfg.steps, cfg.data_source) == (LLAMA, "embedded", 2, "hub")
    with pytest.raises(SystemExit):
        generalization.main(["--dry-run", "--task", "trec"])
    assert "its pairs" in capsys.readouterr().err
