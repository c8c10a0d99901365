"""Build the course as a static HTML book: every chapter with its outputs and figures.

    python scripts/build_book.py                         # execute every notebook with its defaults, then build
    python scripts/build_book.py --executed DIR          # build from notebooks already executed (e.g. the suite's)
    python scripts/build_book.py --check build/book      # only check a built book; exit 1 on a problem

The book goes to ``build/book/`` (``--out``): ``index.html`` (the chapters with
their titles, in order) and one page per notebook, converted by nbconvert's
HTML exporter, which embeds every figure as a ``data:`` URI, so the folder can
be copied or served anywhere.  Executing the chapters with their defaults takes
a while (06 and 07 run grids, up to hours on a CPU); ``--only 00 01`` picks
chapters.  A notebook with an error output is refused, not published.

nbconvert (installed with the notebooks extra) rather than Jupyter Book: the
notebooks are the whole content, an index page is all the structure a course of
ten pages needs, and nbconvert needs no new dependency and no build config.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
TRACEBACK = "Traceback (most recent call last)"
DATA_IMG = re.compile(r'<img[^>]+src="data:image/(?:png|jpeg|svg\+xml)[;,]')


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The chapters in order, then run_seo.ipynb (the notebook the grids execute)."""
    paths = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb")) + [NB_DIR / "run_seo.ipynb"]
    return [p for p in paths if not only or any(p.name.startswith(o) for o in only)]


def execute(paths: list[Path], out: Path) -> None:
    """Run each notebook with its defaults: the chapters in notebooks/, as in Jupyter;
    run_seo.ipynb from the repository root, as its own papermill line does (its
    ``OUT_DIR`` is relative to where the kernel runs)."""
    import papermill as pm

    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        t0 = time.perf_counter()
        print(f"executing {p.name} ...", flush=True)
        cwd = REPO if p.name == "run_seo.ipynb" else NB_DIR
        pm.execute_notebook(str(p), str(out / p.name), kernel_name="python3", cwd=str(cwd),
                            progress_bar=False)
        print(f"  {p.name}: {time.perf_counter() - t0:.0f} s", flush=True)


def errors(nb) -> list[str]:
    """The error outputs of an executed notebook, as 'cell N: Name: message'."""
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue', '')[:120]}"
            for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def figure_count(nb) -> int:
    """Image outputs of an executed notebook (each must reach the page)."""
    return sum(any(k.startswith("image/") for k in o.get("data", {}))
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def title(nb) -> str:
    first = nb.cells[0].source.splitlines()[0] if nb.cells else ""
    return first.lstrip("# ").strip() or "untitled"


def build(executed: Path, out: Path, paths: list[Path]) -> list[Path]:
    """Convert the executed copies of ``paths`` into ``out``; returns the pages."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    out.mkdir(parents=True, exist_ok=True)
    entries, pages = [], []
    for p in paths:
        src = executed / p.name
        if not src.is_file():
            raise SystemExit(f"error: {src} not found: execute it first (run without --executed)")
        nb = nbformat.read(str(src), as_version=4)
        bad = errors(nb)
        if bad:
            raise SystemExit(f"error: {p.name} holds error output, not published: {bad[0]}")
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title(nb)}})
        page = out / (p.stem + ".html")
        page.write_text(body, encoding="utf-8")
        pages.append(page)
        entries.append((page.name, title(nb), figure_count(nb)))
    items = "\n".join(f'<li><a href="{name}">{html.escape(t)}</a> <small>({n} figures)</small></li>'
                      for name, t, n in entries)
    (out / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>seo_lite: the course</title></head>"
        "<body><h1>seo_lite: the course</h1>\n<p>SEO (Stochastic Experience Optimization) taken "
        "apart one mechanism per chapter, with every output of a run on a CPU.</p>\n"
        f"<ol start=\"0\">\n{items}\n</ol></body></html>\n", encoding="utf-8")
    return pages


def check_page(text: str, figures: int) -> list[str]:
    """What is wrong with one page's HTML (or the DOM a browser built from it)."""
    out = []
    if TRACEBACK in text:
        out.append("holds a traceback (an error output)")
    found = len(DATA_IMG.findall(text))
    if found < figures:
        out.append(f"embeds {found} figure(s), the notebook has {figures}")
    return out


def check(book: Path, executed: Path | None = None, paths: list[Path] | None = None) -> list[str]:
    """Every chapter page exists, is linked from the index, embeds its figures
    (as counted in the executed notebook, when given) and holds no error."""
    problems = []
    index = (book / "index.html").read_text(encoding="utf-8") if (book / "index.html").is_file() else ""
    if not index:
        problems.append("index.html missing")
    for p in paths or notebooks():
        page = book / (p.stem + ".html")
        if not page.is_file():
            problems.append(f"{page.name}: missing")
            continue
        if f'href="{page.name}"' not in index:
            problems.append(f"{page.name}: not linked from index.html")
        n = figure_count(nbformat.read(str(executed / p.name), as_version=4)) if executed else 0
        problems += [f"{page.name}: {m}" for m in check_page(page.read_text(encoding="utf-8"), n)]
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executed", type=Path, help="folder of executed notebooks (skip executing)")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "book")
    ap.add_argument("--only", nargs="*", help="chapter prefixes, e.g. 00 01 run_seo")
    ap.add_argument("--check", type=Path, metavar="BOOK", help="only check a built book")
    args = ap.parse_args(argv)
    paths = notebooks(args.only)
    if args.check:
        problems = check(args.check, args.executed, paths)
    else:
        executed = args.executed or args.out / "executed"
        if args.executed is None:
            execute(paths, executed)
        build(executed, args.out, paths)
        problems = check(args.out, executed, paths)
        print(f"book: {args.out / 'index.html'} ({len(paths)} pages)")
    for m in problems:
        print("problem:", m)
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
