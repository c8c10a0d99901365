"""The rendered course (scripts/build_book.py): pages, embedded figures, no errors.

Here on small executed notebooks made in the test (a real matplotlib PNG in a
real output); tests/test_notebooks.py builds the book from the chapters the
suite executes and checks it the same way.  Where Chromium is installed, a
headless browser opens the pages and the checks run on the DOM it built."""
from __future__ import annotations

import base64
import importlib.util
import io
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


def load_book():
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def png() -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def executed_notebook(title: str, image: str | None, error: bool = False):
    out = [nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.55\n")]
    if image:
        out.append(nbformat.v4.new_output("display_data", data={"image/png": image, "text/plain": "<Figure>"}))
    if error:
        out.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="boom",
                                          traceback=["Traceback (most recent call last)", "AssertionError: boom"]))
    code = nbformat.v4.new_code_cell("print('accuracy')", outputs=out, execution_count=1)
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n\nSome prose."), code])


@pytest.fixture
def small(tmp_path):
    """Two 'chapters' executed, each with one figure."""
    book = load_book()
    executed = tmp_path / "executed"
    executed.mkdir()
    paths = [Path("00_quick_start.ipynb"), Path("01_generator_and_experience.ipynb")]
    image = png()
    for i, p in enumerate(paths):
        nbformat.write(executed_notebook(f"{i}. Chapter {i}", image), str(executed / p.name))
    return book, executed, paths, image


def test_the_book_has_every_page_linked_with_its_figures_embedded(small, tmp_path):
    book, executed, paths, image = small
    pages = book.build(executed, tmp_path / "book", paths)
    assert [p.name for p in pages] == ["00_quick_start.html", "01_generator_and_experience.html"]
    index = (tmp_path / "book" / "index.html").read_text()
    assert '<a href="00_quick_start.html">0. Chapter 0</a>' in index and "01_generator" in index
    for page in pages:
        text = page.read_text()
        assert image[:200] in text and "accuracy 0.55" in text       # the figure and the output, inline
    assert book.check(tmp_path / "book", executed, paths) == []
    assert not list((tmp_path / "book").glob("*.png")), "figures are data URIs, not side files"


def test_check_reports_a_missing_page_a_lost_figure_and_a_traceback(small, tmp_path):
    book, executed, paths, _ = small
    out = tmp_path / "book"
    book.build(executed, out, paths)
    (out / "00_quick_start.html").unlink()
    page = out / "01_generator_and_experience.html"
    page.write_text(page.read_text().replace('src="data:image/png', 'src="lost.png" x="')
                    + "<pre>Traceback (most recent call last)</pre>")
    problems = book.check(out, executed, paths)
    assert "00_quick_start.html: missing" in problems
    assert any("embeds 0 figure(s), the notebook has 1" in m for m in problems)
    assert any("traceback" in m for m in problems)
    assert book.main(["--check", str(out), "--executed", str(executed), "--only", "00", "01"]) == 1


def test_a_notebook_with_an_error_output_is_not_published(small, tmp_path):
    book, executed, paths, image = small
    nbformat.write(executed_notebook("1. Broken", image, error=True), str(executed / paths[1].name))
    with pytest.raises(SystemExit, match="01_generator_and_experience.ipynb holds error output.*AssertionError"):
        book.build(executed, tmp_path / "book", paths)
    with pytest.raises(SystemExit, match="not found"):
        book.build(tmp_path / "nowhere", tmp_path / "book", paths)


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM headless Chromium builds from ``page`` (flags: no network, no GPU, fresh profile)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def check_in_browser(book_mod, book: Path, executed: Path, paths, tmp_path: Path) -> None:
    """Open the index and every page in headless Chromium; the checks run on the DOM."""
    index = chromium_dom(book / "index.html", tmp_path / "profile")
    for p in paths:
        page = book / (Path(p).stem + ".html")
        assert f'href="{page.name}"' in index
        n = book_mod.figure_count(nbformat.read(str(executed / Path(p).name), as_version=4))
        dom = chromium_dom(page, tmp_path / "profile")
        assert book_mod.check_page(dom, n) == [], page.name
        assert "<body" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (/usr/bin/chromium)")
def test_the_book_in_headless_chromium(small, tmp_path):
    book, executed, paths, _ = small
    book.build(executed, tmp_path / "book", paths)
    check_in_browser(book, tmp_path / "book", executed, paths, tmp_path)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.mark.slow
def test_execute_then_build_a_real_notebook(tmp_path):
    """The path without --executed: papermill runs the notebook, then it is built and checked."""
    book = load_book()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 9. A tiny chapter"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nprint('done')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "09_tiny.ipynb"
    nbformat.write(nb, str(src))
    book.execute([src], tmp_path / "executed")
    executed = nbformat.read(str(tmp_path / "executed" / src.name), as_version=4)
    assert book.figure_count(executed) == 1 and book.errors(executed) == []
    book.build(tmp_path / "executed", tmp_path / "book", [src])
    assert book.check(tmp_path / "book", tmp_path / "executed", [src]) == []
