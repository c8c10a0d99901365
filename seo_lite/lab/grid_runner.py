"""Running a grid of ``run_seo.ipynb`` executions through papermill, resumably.

A grid is a list of :class:`GridCell`\\ s, each a set of ``run_seo.ipynb``
parameters (:mod:`seo_lite.machinery.params`); :mod:`seo_lite.lab.ablation` builds the
paper's ablation grids.  :func:`run_grid` executes every cell as

    papermill run_seo.ipynb  <grid>/<name>.ipynb  -p ...  OUT_DIR=<grid>/<name>/

Finished cells (``final.json``) are skipped and half-finished ones resume
(docs/grids.md).  Every execution is appended to ``<grid>/executions.jsonl``
(so one can check that nothing ran twice); ``<grid>/grid.json`` lists the cells.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..machinery.files import atomic_write_text
from ..machinery.runs import RunError, safe_run_path
from ..llm.cache import HOST

GRID_FILE = "grid.json"
EXECUTIONS_FILE = "executions.jsonl"
RUN_NOTEBOOK_NAME = "run_seo.ipynb"
RUNNING = "running"                # the line an execution logs when it starts


@dataclass(frozen=True)
class GridCell:
    name: str
    factor: str                  # baseline | validation | comparison_trials | val_size | optimizer
    level: str
    seed: int
    params: dict

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CellStatus:
    name: str
    status: str                  # "done" (already finished) | "ran" | "failed"
    run_dir: Path
    seconds: float = 0.0
    error: str | None = None


def find_run_notebook(notebook: str | os.PathLike | None = None) -> Path:
    """``notebook`` if given, else ``notebooks/run_seo.ipynb`` or ``run_seo.ipynb``
    in the working folder or a folder above it; a clear error when there is none."""
    if notebook is not None:
        path = Path(notebook).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give the path of run_seo.ipynb")
        return path.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        for path in (folder / "notebooks" / RUN_NOTEBOOK_NAME, folder / RUN_NOTEBOOK_NAME):
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{RUN_NOTEBOOK_NAME} not found (looked in {here} and the folders above it). The grid "
        "runs the notebooks/run_seo.ipynb of the seo_lite repository, which the installed "
        "package does not contain: clone the repository and run from it, or pass notebook=PATH")


def is_finished(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / "final.json").is_file()


def kernel_config():
    """Traitlets config for the kernels papermill starts: encrypted transport
    where jupyter_client offers it (``transport_encryption``; ipykernel >= 7.3
    warns on every start of an unencrypted TCP kernel), else nothing."""
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names():
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _papermill(notebook: Path, output: Path, parameters: dict, kernel_name: str,
               cwd: Path) -> None:
    import papermill as pm

    from ..llm.progress import ENV_PROGRESS

    # a papermill kernel looks like interactive Jupyter, but its output ends up in a
    # file: plain progress lines, not widget bars (a user's own setting wins)
    given = os.environ.get(ENV_PROGRESS)
    os.environ.setdefault(ENV_PROGRESS, "lines")
    try:
        for attempt in (1, 2):   # kernels started at once by two workers can draw the same port
            try:
                pm.execute_notebook(str(notebook), str(output), parameters=parameters,
                                    kernel_name=kernel_name, progress_bar=False, log_output=False,
                                    cwd=str(cwd), config=kernel_config())
                break
            except RuntimeError as e:        # the kernel never started: nothing of the cell ran
                if attempt == 2 or "before replying to kernel_info" not in str(e):
                    raise
    finally:
        if given is None:
            os.environ.pop(ENV_PROGRESS, None)


def write_grid_file(grid_dir: Path, cells: Sequence[GridCell], notebook: Path) -> None:
    """``grid.json``: the cells of the grid.  Cells of an earlier call that are not
    in this one are kept."""
    path = grid_dir / GRID_FILE
    known: dict[str, dict] = {}
    if path.is_file():
        try:
            known = {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]}
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"{path} is not a grid file ({e}); use another folder") from e
    for c in cells:
        known[c.name] = c.to_dict()
    atomic_write_text(path, json.dumps({"grid": grid_dir.name, "notebook": notebook.name,
                                        "cells": list(known.values())}, indent=1) + "\n")


def read_grid(grid_dir: str | os.PathLike) -> list[GridCell]:
    data = json.loads((Path(grid_dir) / GRID_FILE).read_text(encoding="utf-8"))
    return [GridCell(**c) for c in data["cells"]]


def prepare_grid(cells: Sequence[GridCell], grid_dir: str | os.PathLike,
                 notebook: str | os.PathLike | None = None, in_process: bool = False) -> tuple[Path, Path]:
    """The grid folder (created, ``grid.json`` written) and the notebook every cell runs."""
    notebook = Path(RUN_NOTEBOOK_NAME) if in_process and notebook is None else find_run_notebook(notebook)
    grid = Path(grid_dir).resolve()
    grid.mkdir(parents=True, exist_ok=True)
    write_grid_file(grid, cells, notebook)
    return grid, notebook


def run_grid(cells: Sequence[GridCell], grid_dir: str | os.PathLike, *,
             notebook: str | os.PathLike | None = None, kernel_name: str = "python3",
             log: Callable[[str], None] | None = print, stop_on_error: bool = False,
             execute: Callable[..., None] | None = None) -> list[CellStatus]:
    """Run every unfinished cell of the grid through papermill, one after another
    (:mod:`seo_lite.lab.fanout` runs them in parallel workers or on Slurm).

    Writes ``<grid>/<name>.ipynb`` (the executed notebook) and ``<grid>/<name>/``
    (the run directory).  Finished cells are skipped; a failing cell is recorded
    and the grid goes on (``stop_on_error=True`` raises instead).  ``execute``
    replaces papermill (tests run cells in-process)."""
    grid, notebook = prepare_grid(cells, grid_dir, notebook, in_process=execute is not None)
    out = []
    for i, cell in enumerate(cells, 1):
        out.append(run_cell(cell, grid, notebook, kernel_name, execute=execute,
                            log=log, prefix=f"[{i}/{len(cells)}] "))
        if out[-1].error and stop_on_error:
            raise RuntimeError(f"grid cell {cell.name} failed: {out[-1].error}")
    return out


def run_cell(cell: GridCell, grid: Path, notebook: Path, kernel_name: str = "python3", *,
             execute: Callable[..., None] | None = None, log: Callable[[str], None] | None = print,
             prefix: str = "") -> CellStatus:
    """Run one cell (skipped when finished; resumed when its run directory has
    steps), logging its start and end in ``executions.jsonl``."""
    say = log or (lambda s: None)
    run_dir = safe_run_path(grid, cell.name)
    if is_finished(run_dir):
        say(f"{prefix}{cell.name}: finished earlier, skipped")
        return CellStatus(cell.name, "done", run_dir)
    params = {**cell.params, "OUT_DIR": str(run_dir)}
    resumed = (run_dir / "steps.jsonl").is_file()
    say(f"{prefix}{cell.name}: running" + (" (resuming its run directory)" if resumed else ""))
    t0 = time.time()
    _log_execution(grid, cell, t0, RUNNING, resumed)
    error = None
    try:
        (execute or _papermill)(notebook, safe_run_path(grid, cell.name + ".ipynb"), params,
                                kernel_name, grid)
    except KeyboardInterrupt:
        _log_execution(grid, cell, t0, "interrupted", resumed)
        raise
    except Exception as e:                        # a failing cell must not stop the grid
        error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1].strip()}"
    seconds = time.time() - t0
    status = "ran" if error is None and is_finished(run_dir) else "failed"
    if status == "failed" and error is None:
        error = "the notebook finished without writing final.json"
    _log_execution(grid, cell, t0, status, resumed, error)
    say(f"    {status} in {seconds:.0f} s" + (f": {error}" if error else ""))
    return CellStatus(cell.name, status, run_dir, seconds, error)


def _log_execution(grid: Path, cell: GridCell, t0: float, status: str, resumed: bool,
                   error: str | None = None) -> None:
    line = json.dumps({"cell": cell.name, "started": round(t0, 3),
                       "seconds": round(time.time() - t0, 2), "status": status,
                       "resumed": resumed, "error": error, "host": HOST, "pid": os.getpid()})
    with open(grid / EXECUTIONS_FILE, "a", encoding="utf-8") as f:   # one short O_APPEND write
        f.write(line + "\n")


def executions(grid_dir: str | os.PathLike, *, started: bool = False) -> list[dict]:
    """Every execution the grid made and ended (one line per papermill run);
    ``started=True`` also the lines logged when one started."""
    path = Path(grid_dir) / EXECUTIONS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [e for e in map(json.loads, filter(str.strip, lines)) if started or e["status"] != RUNNING]


def grid_status(grid_dir: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """The cells of ``grid.json`` by state: ``finished`` (final.json), ``running``
    (a start logged, no end, and on this host its process is alive), ``failed``
    (the last execution failed, or its worker died: the error line beside it) and
    ``pending`` (never started)."""
    from ..llm.cache import pid_alive

    last = {e["cell"]: e for e in executions(grid_dir, started=True)}
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in ("finished", "running", "failed", "pending")}
    for cell in read_grid(grid_dir):
        e = last.get(cell.name)
        if is_finished(Path(grid_dir) / cell.name):
            out["finished"].append((cell.name, ""))
        elif e is None:
            out["pending"].append((cell.name, ""))
        elif e["status"] == RUNNING:
            gone = e.get("host") == HOST and not pid_alive(e.get("pid", 0))
            out["failed" if gone else "running"].append(
                (cell.name, "its worker died (no end logged); run the grid again to resume it"
                 if gone else f"on {e.get('host')} pid {e.get('pid')}"))
        else:
            out["failed"].append((cell.name, e.get("error") or e["status"]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seo_lite.lab.grid_runner status GRID_DIR``: the cells by state;
    ``... cell GRID_DIR NAME``: run (or resume) one cell of ``grid.json`` (the
    command ``--print-commands`` prints, for any scheduler)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m seo_lite.lab.grid_runner", description=main.__doc__)
    ap.add_argument("command", choices=("status", "cell"))
    ap.add_argument("grid_dir")
    ap.add_argument("name", nargs="?")
    ap.add_argument("--notebook", default=None, help="path of run_seo.ipynb")
    ap.add_argument("--kernel", default="python3")
    args = ap.parse_args(argv)
    if not (Path(args.grid_dir) / GRID_FILE).is_file():
        ap.error(f"{args.grid_dir} holds no {GRID_FILE}")
    if args.command == "status":
        states = grid_status(args.grid_dir)
        print(", ".join(f"{len(v)} {k}" for k, v in states.items()))
        for state in ("running", "failed", "pending"):
            for name, note in states[state]:
                print(f"{state:<8} {name}" + (f"  {note}" if note else ""))
        return 1 if states["failed"] else 0
    cells = {c.name: c for c in read_grid(args.grid_dir)}
    if args.name not in cells:
        ap.error(f"no cell {args.name!r} in {args.grid_dir}/{GRID_FILE}")
    s = run_cell(cells[args.name], Path(args.grid_dir).resolve(),
                 find_run_notebook(args.notebook), args.kernel)
    return 1 if s.status == "failed" else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
