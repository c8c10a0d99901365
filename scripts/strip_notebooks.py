"""Store notebooks without outputs or noisy metadata, so that diffs stay readable.

    python scripts/strip_notebooks.py            # clean notebooks/*.ipynb in place
    python scripts/strip_notebooks.py --check    # exit 1 if any notebook is not clean
    python scripts/strip_notebooks.py a.ipynb    # particular files

Clean means: no outputs, ``execution_count`` None, cell metadata holds at most
``tags`` (the papermill ``parameters`` tag), and the notebook metadata is only
the kernel (``python3``) and the language.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}}
ALLOWED_CELL_METADATA = {"tags"}


def problems(nb) -> list[str]:
    """What keeps ``nb`` (a notebook node) from being clean; empty when clean."""
    out = []
    if dict(nb.metadata) != NOTEBOOK_METADATA:
        out.append(f"notebook metadata {sorted(nb.metadata)} is not the minimal kernel + language")
    for i, cell in enumerate(nb.cells):
        extra = set(cell.get("metadata", {})) - ALLOWED_CELL_METADATA
        if extra:
            out.append(f"cell {i}: metadata {sorted(extra)}")
        if cell.get("metadata", {}).get("tags") == []:
            out.append(f"cell {i}: empty tags")
        if cell.cell_type == "code":
            if cell.get("outputs"):
                out.append(f"cell {i}: has outputs")
            if cell.get("execution_count") is not None:
                out.append(f"cell {i}: execution_count {cell.execution_count}")
    return out


def strip(nb):
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags")
        cell.metadata = nbformat.from_dict({"tags": list(tags)} if tags else {})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if not clean")
    args = ap.parse_args(argv)
    paths = args.paths or sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    dirty = 0
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        found = problems(nb)
        if not found:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: " + "; ".join(found[:5]))
        else:
            nbformat.write(strip(nb), str(path))
            print(f"stripped {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
