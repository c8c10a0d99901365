"""Writing files so that a kill never leaves half of one.

Run directories, figures, grid files and the call cache all write through
:func:`atomic_write_text`.  Its temporary file's name (``.<name>.<pid>.*.tmp``)
carries the writer's process id, so a later writer can tell what a killed
process left behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new
    one, never half of one (temporary file in the same folder + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    """``obj`` as indented JSON at ``path`` (folders created, written atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    return path
