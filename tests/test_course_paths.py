"""A chapter's runs land in the repository's runs/, beside the CLI's, not in notebooks/runs/."""
import json
import re
from pathlib import Path

import pytest

from seo_lite.lab.course import checkout_root, runs_path

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("0*.ipynb"))


def test_relative_paths_go_under_the_checkout_from_any_folder_inside_it(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO / "notebooks")
    assert checkout_root() == REPO
    assert runs_path("runs/chapter07") == REPO / "runs" / "chapter07"
    assert runs_path(tmp_path / "x") == tmp_path / "x"              # absolute: as given
    monkeypatch.chdir(tmp_path)                                       # outside a checkout (Colab)
    assert checkout_root() is None and runs_path("runs/a") == Path("runs/a")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_runs_parameter_of_a_chapter_goes_through_runs_path(chapter):
    cells = json.loads(chapter.read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code" and c not in params)
    names = [m.group(1) for c in params
             for m in re.finditer(r'^(\w+)\s*=\s*"runs/', "".join(c["source"]), re.M)]
    for name in names:
        assert re.search(rf"\b{name}\b[^\n]*=\s*runs_path\(|runs_path\({name}\)", code), \
            f"{chapter.name}: {name} is used as given, relative to notebooks/"
