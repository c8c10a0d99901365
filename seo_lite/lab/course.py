"""What the course notebooks share: where a chapter's runs land.

A chapter's notebook runs with ``notebooks/`` as its working folder, while the
command line writes ``runs/`` under the repository root.  :func:`runs_path`
puts a relative path such as ``"runs/quickstart"`` under the repository root
when the notebook runs inside a checkout, so a reader finds the chapter's runs
beside the CLI's; outside a checkout (Colab, an installed package) it stays
relative to the working folder.  An absolute path is used as it is.
"""
from __future__ import annotations

import os
from pathlib import Path


def checkout_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working folder)
    that holds this project's ``pyproject.toml`` and ``seo_lite/``; None if none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "seo_lite").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return None


def runs_path(path: str | os.PathLike) -> Path:
    """``path`` under the repository root if it is relative and we are in a checkout."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    root = checkout_root()
    return (root / p) if root is not None else p


__all__ = ["checkout_root", "runs_path"]
