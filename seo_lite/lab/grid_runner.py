"""Running a grid of ``run_seo.ipynb`` executions through papermill, resumably.

A grid is a list of :class:`GridCell`\\ s, each a set of ``run_seo.ipynb``
parameters (:mod:`seo_lite.machinery.params`); :mod:`seo_lite.lab.ablation` builds the
paper's ablation grids.  :func:`run_grid` executes every cell as

    papermill run_seo.ipynb  <grid>/<name>.ipynb  -p ...  OUT_DIR=<grid>/<name>/

A cell is finished when its run directory holds ``final.json``; an
interrupted grid, run again, skips finished cells and re-executes the others,
and a half-finished run directory resumes after its last logged step (the
run directory's own resume).  Every execution is appended to
``<grid>/executions.jsonl``, which is how one can check that nothing ran
twice; ``<grid>/grid.json`` lists the cells (what figures group runs by).

``run_seo.ipynb`` is a file of the repository, not of the installed
package: pass its path, or run from a checkout (it is found as
``notebooks/run_seo.ipynb`` or ``run_seo.ipynb`` from the working folder up).
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

GRID_FILE = "grid.json"
EXECUTIONS_FILE = "executions.jsonl"
RUN_NOTEBOOK_NAME = "run_seo.ipynb"


@dataclass(frozen=True)
class GridCell:
    """One run of a grid: a factor, its level, a seed and the parameters."""

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
    tried = []
    for folder in (here, *here.parents):
        for path in (folder / "notebooks" / RUN_NOTEBOOK_NAME, folder / RUN_NOTEBOOK_NAME):
            if path.is_file():
                return path
            tried.append(str(path))
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
        pm.execute_notebook(str(notebook), str(output), parameters=parameters,
                            kernel_name=kernel_name, progress_bar=False, log_output=False,
                            cwd=str(cwd), config=kernel_config())
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


def run_grid(cells: Sequence[GridCell], grid_dir: str | os.PathLike, *,
             notebook: str | os.PathLike | None = None, kernel_name: str = "python3",
             log: Callable[[str], None] | None = print, stop_on_error: bool = False,
             execute: Callable[..., None] | None = None) -> list[CellStatus]:
    """Run every unfinished cell of the grid through papermill (in order).

    Writes ``<grid>/<name>.ipynb`` (the executed notebook) and ``<grid>/<name>/``
    (the run directory).  Finished cells are skipped; a failing cell is recorded
    and the grid goes on (``stop_on_error=True`` raises instead).  ``execute``
    replaces papermill (tests run cells in-process)."""
    if execute is None or notebook is not None:
        notebook = find_run_notebook(notebook)
    else:
        notebook = Path(RUN_NOTEBOOK_NAME)
    grid = Path(grid_dir).resolve()
    grid.mkdir(parents=True, exist_ok=True)
    write_grid_file(grid, cells, notebook)
    execute = execute or _papermill
    say = log or (lambda s: None)
    out: list[CellStatus] = []
    for i, cell in enumerate(cells, 1):
        run_dir = safe_run_path(grid, cell.name)
        if is_finished(run_dir):
            say(f"[{i}/{len(cells)}] {cell.name}: finished earlier, skipped")
            out.append(CellStatus(cell.name, "done", run_dir))
            continue
        params = {**cell.params, "OUT_DIR": str(run_dir)}
        resumed = (run_dir / "steps.jsonl").is_file()
        say(f"[{i}/{len(cells)}] {cell.name}: running" + (" (resuming its run directory)" if resumed else ""))
        t0 = time.time()
        error = None
        try:
            execute(notebook, safe_run_path(grid, cell.name + ".ipynb"), params, kernel_name, grid)
        except KeyboardInterrupt:
            _log_execution(grid, cell, t0, "interrupted", resumed)
            raise
        except Exception as e:                        # a failing cell must not stop the grid
            error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        seconds = time.time() - t0
        status = "ran" if error is None and is_finished(run_dir) else "failed"
        if status == "failed" and error is None:
            error = "the notebook finished without writing final.json"
        _log_execution(grid, cell, t0, status, resumed, error)
        say(f"    {status} in {seconds:.0f} s" + (f": {error}" if error else ""))
        out.append(CellStatus(cell.name, status, run_dir, seconds, error))
        if error and stop_on_error:
            raise RuntimeError(f"grid cell {cell.name} failed: {error}")
    return out


def _log_execution(grid: Path, cell: GridCell, t0: float, status: str, resumed: bool,
                   error: str | None = None) -> None:
    line = json.dumps({"cell": cell.name, "started": round(t0, 3),
                       "seconds": round(time.time() - t0, 2), "status": status,
                       "resumed": resumed, "error": error})
    with open(grid / EXECUTIONS_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def executions(grid_dir: str | os.PathLike) -> list[dict]:
    """Every execution the grid made (one line per papermill run)."""
    path = Path(grid_dir) / EXECUTIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
