"""A grid's cells beyond one process: local workers, a Slurm job array, any scheduler.

Every cell is resumable (:func:`seo_lite.lab.grid_runner.run_cell` skips a
finished run directory and resumes a half-finished one), so fanning out only
decides where each pending cell runs; the engines, their flags and the shared
storage they need are in docs/grids.md.  :class:`CellRunner` is submitit's
``Checkpointable``: on preemption or timeout the same call is requeued, and resumes.
"""
from __future__ import annotations

import multiprocessing
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from .grid_runner import GridCell, is_finished, prepare_grid, run_cell

try:                                         # optional: pip install 'seo_lite[slurm]'
    import submitit
    from submitit.helpers import Checkpointable as _Requeueable
except ImportError:                          # pragma: no cover - exercised where submitit is missing
    submitit, _Requeueable = None, object

ENGINES = ("serial", "local", "pool", "slurm", "commands", "sbatch")
NEVER_MIN = 60 * 24 * 30                     # LocalExecutor's default timeout is 2 minutes


def worker_env(slot: int, workers: int, *, cpus: int | None = None, gpus: int = 0) -> dict:
    """Worker ``slot``'s share of the CPU threads and, when there are GPUs, one GPU."""
    cpus = cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    threads = str(max(1, (cpus or 1) // max(1, workers)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            **({"CUDA_VISIBLE_DEVICES": str(slot % gpus)} if gpus else {})}


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:                        # no torch, no CUDA: CPU workers
        return 0


class CellRunner(_Requeueable):
    """Runs some cells of a grid in this process (each in its own kernel)."""

    def __call__(self, grid: str, cells: Sequence[dict], notebook: str, kernel_name: str,
                 env: dict) -> list[tuple[str, str, str | None]]:
        os.environ.update(env)
        if "CUDA_VISIBLE_DEVICES" not in env and os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            del os.environ["CUDA_VISIBLE_DEVICES"]   # submitit's local jobs set it empty
        done = [run_cell(GridCell(**c), Path(grid), Path(notebook), kernel_name, log=None)
                for c in cells]
        return [(s.name, s.status, s.error) for s in done]


def slurm_parameters(args) -> dict:
    """``SlurmExecutor.update_parameters`` arguments (sbatch names) from the flags."""
    given = {"partition": args.slurm_partition, "gpus_per_node": args.gpus_per_node,
             "cpus_per_task": args.cpus_per_task, "time": args.timeout_min,
             "mem": f"{args.mem_gb}GB" if args.mem_gb else None,
             "array_parallelism": args.array_parallelism, "job_name": "seo-grid"}
    return {k: v for k, v in given.items() if v is not None}


def fan_out(cells: Sequence[GridCell], grid_dir: str | os.PathLike, *, engine: str = "local",
            workers: int = 2, notebook: str | os.PathLike | None = None,
            kernel_name: str = "python3", logs: str | os.PathLike | None = None,
            slurm: dict | None = None, log: Callable[[str], None] = print) -> list:
    """Run the grid's pending cells with ``engine`` (see docs/grids.md).
    Local engines wait and return ``(name, status, error)`` per cell they ran;
    ``slurm`` returns the submitted jobs (``python -m seo_lite.lab.grid_runner
    status GRID_DIR`` follows them)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    grid, notebook = prepare_grid(cells, grid_dir, notebook)
    pending = [c for c in cells if not is_finished(grid / c.name)]
    log(f"{len(cells) - len(pending)} of {len(cells)} cells finished earlier; "
        f"{len(pending)} to run ({engine})")
    logs = Path(logs or grid / "submitit-logs")
    if engine == "commands":
        q = shlex.quote
        for c in pending:
            print(f"{q(sys.executable)} -m seo_lite.lab.grid_runner cell {q(str(grid))} {c.name} "
                  f"--notebook {q(str(notebook))}")
    if engine == "sbatch" and pending:           # what map_array would submit, without a cluster
        from submitit.slurm.slurm import _make_sbatch_string

        cmd = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(logs))}"
        print(_make_sbatch_string(command=cmd, folder=logs, map_count=len(pending), **(slurm or {})))
    if not pending or engine in ("commands", "sbatch"):
        return []
    args = (str(grid), str(notebook), kernel_name)
    if engine == "serial":
        return [(s.name, s.status, s.error) for s in
                (run_cell(c, grid, notebook, kernel_name, log=log) for c in pending)]
    if engine in ("local", "slurm") and submitit is None:
        if engine == "slurm":
            raise RuntimeError("the slurm engine needs submitit: pip install 'seo_lite[slurm]'")
        log("submitit is not installed: using a process pool")
        engine = "pool"
    if engine == "slurm":
        try:
            ex = submitit.SlurmExecutor(folder=logs)
        except RuntimeError as e:                # no srun here
            raise RuntimeError(f"{e} (--print-sbatch shows the job; --print-commands suits any scheduler)") from None
        ex.update_parameters(**(slurm or {}))
        env = worker_env(0, 1, cpus=int((slurm or {}).get("cpus_per_task", 1)))
        jobs = ex.map_array(CellRunner(), *zip(*[(args[0], [c.to_dict()], *args[1:], env)
                                                  for c in pending]))
        log(f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} cells); logs in {logs}")
        return jobs
    n = max(1, min(workers, len(pending)))
    gpus = _gpus()
    shares = [[c.to_dict() for c in pending[i::n]] for i in range(n)]
    envs = [worker_env(i, n, gpus=gpus) for i in range(n)]
    log(f"{n} workers, {envs[0]['OMP_NUM_THREADS']} threads each"
        + (f", one GPU each of {gpus}" if gpus else ""))
    if engine == "pool":
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(CellRunner(), args[0], s, *args[1:], e) for s, e in zip(shares, envs)]
            return _results(futures, shares, log)
    ex = submitit.LocalExecutor(folder=logs)
    ex.update_parameters(timeout_min=NEVER_MIN)
    return _results([ex.submit(CellRunner(), args[0], s, *args[1:], e)
                     for s, e in zip(shares, envs)], shares, log)


def _results(futures, shares, log) -> list:
    """Wait for every worker; a worker that died leaves its cells unfinished
    (the next call resumes them), recorded here as failed."""
    out = []
    for fut, share in zip(futures, shares):
        try:
            out += fut.result()
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[-1]
            log(f"a worker died ({type(e).__name__}: {first}); run the grid again to resume its cells")
            out += [(c["name"], "failed", f"worker died: {type(e).__name__}") for c in share]
    return out


# -- the grid's cost before it starts ---------------------------------------------------------------
def print_costs(rows: Sequence[tuple[str, object]], *, price_per_mtok=None, tokens_per_second=None) -> dict:
    """The dry run of many runs: per ``(name, SEOConfig)`` and in total, model calls,
    prompt tokens, new tokens (at most) and, given a price or a throughput, USD or
    hours (:func:`seo_lite.machinery.dryrun.estimate_cost`: no model is loaded)."""
    from ..machinery.dryrun import estimate_cost

    total = dict.fromkeys(("calls", "prompt", "new", "usd", "hours"), 0)
    w = max([len(name) for name, _ in rows] + [20]) + 2
    line = lambda name, v: (f"{name:<{w}}{v['calls']:>9,}{v['prompt']:>14,}{v['new']:>12,}"
                            + (f"{v['usd']:>10,.2f}" if price_per_mtok else "")
                            + (f"{v['hours']:>9,.1f}" if tokens_per_second else ""))
    print(f"{'cell':<{w}}{'calls':>9}{'prompt tok':>14}{'new tok':>12}"
          + (f"{'USD':>10}" if price_per_mtok else "") + (f"{'hours':>9}" if tokens_per_second else ""))
    for name, config in rows:
        est = estimate_cost(config, price_per_mtok=price_per_mtok, tokens_per_second=tokens_per_second)
        v = {"calls": est.total("calls"), "prompt": est.prompt_tokens, "new": est.total("new_tokens"),
             "usd": est.cost_usd or 0.0, "hours": (est.seconds or 0.0) / 3600}
        total = {k: total[k] + v[k] for k in total}
        print(line(name, v), flush=True)
    print(line(f"total ({len(rows)} runs)", total))
    print("estimates: counted from each run's config, no model loaded (new tokens are the cap); USD and "
          "hours at the --price-per-mtok / --tokens-per-second given, one GPU or API stream per run")
    return total
