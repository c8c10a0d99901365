"""Point the notebooks' Colab install cells at another copy of this repository (a fork).

    python scripts/set_repo_url.py https://github.com/<you>/seo_lite   # rewrite every copy
    python scripts/set_repo_url.py --check                              # exit 1 if a copy differs

The address is written once, as ``Repository`` in ``pyproject.toml``'s
``[project.urls]`` table.  A notebook opened on Colab cannot read that file
(it has no checkout yet: the first cell is what installs one), so each
notebook's Colab cell carries a copy in its ``SEO_LITE_GIT_URL = "..."`` line.
This script rewrites pyproject.toml and every copy together, and
tests/test_notebooks.py checks that the copies agree with pyproject.toml.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r'^(SEO_LITE_GIT_URL = )"([^"]*)"', re.M)
PYPROJECT_LINE = re.compile(r'^(Repository = )"([^"]*)"', re.M)
VALID_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%+-]+)+")


def check_url(url: str) -> str:
    """The URL without a trailing slash; ValueError unless it is a plain https:// address
    (Colab has no SSH keys, so git@... and ssh:// would fail there)."""
    url = url.strip().rstrip("/")
    if not VALID_URL.fullmatch(url):
        raise ValueError(f"not a plain https:// repository address: {url!r} "
                         "(expected e.g. https://github.com/<you>/seo_lite)")
    return url


def _urls_table(text: str) -> tuple[int, int]:
    """Start and end of the ``[project.urls]`` table in pyproject.toml's text."""
    start = text.find("[project.urls]")
    if start < 0:
        raise ValueError("pyproject.toml has no [project.urls] table")
    nxt = re.search(r"^\[", text[start + 1:], re.M)
    return start, (start + 1 + nxt.start()) if nxt else len(text)


def repository_url(root: Path = ROOT) -> str:
    """``[project.urls] Repository`` of ``root/pyproject.toml``."""
    import tomllib

    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def _colab_cell(nb: dict) -> dict | None:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and URL_LINE.search("".join(cell["source"])):
            return cell
    return None


def notebook_url(path: Path) -> str | None:
    """The URL in ``path``'s Colab cell, or None if it has none."""
    cell = _colab_cell(json.loads(path.read_text(encoding="utf-8")))
    return URL_LINE.search("".join(cell["source"])).group(2) if cell else None


def _write_notebook_url(path: Path, url: str) -> bool:
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    cell = _colab_cell(nb)
    if cell is None:
        raise ValueError(f"{path}: no Colab cell with a SEO_LITE_GIT_URL line")
    source = URL_LINE.sub(lambda m: f'{m.group(1)}"{url}"', "".join(cell["source"]), count=1)
    cell["source"] = source.splitlines(keepends=True)
    new = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"   # nbformat's layout
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def set_repo_url(url: str, root: Path = ROOT) -> list[Path]:
    """Write ``url`` into pyproject.toml and every notebook; the files that changed."""
    url = check_url(url)
    changed = []
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    start, end = _urls_table(text)
    table, n = PYPROJECT_LINE.subn(lambda m: f'{m.group(1)}"{url}"', text[start:end], count=1)
    if not n:
        raise ValueError("pyproject.toml's [project.urls] table has no Repository line")
    if table != text[start:end]:
        pyproject.write_text(text[:start] + table + text[end:], encoding="utf-8")
        changed.append(pyproject)
    changed += [p for p in notebooks(root) if _write_notebook_url(p, url)]
    return changed


def mismatches(root: Path = ROOT) -> list[str]:
    """Notebooks whose Colab cell does not install from pyproject's Repository."""
    want = repository_url(root)
    return [f"{p.name}: {got!r} (pyproject.toml: {want!r})" for p in notebooks(root)
            if (got := notebook_url(p)) != want]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", help="the new https:// address of the repository")
    ap.add_argument("--check", action="store_true", help="only check that every copy agrees")
    ap.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.url is None and not args.check:
        ap.error("give the new URL, or --check")
    if args.check:
        bad = mismatches(args.root)
        for line in bad:
            print(line)
        return 1 if bad else 0
    try:
        changed = set_repo_url(args.url, args.root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in changed:
        print(f"updated {p}")
    print(f"repository: {repository_url(args.root)} ({len(changed)} file(s) changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
