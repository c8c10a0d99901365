"""One loader for every task: a local folder of JSONL files, or the Hub.

``load_examples(task)`` returns the task's pool of :class:`Example` s:
``source="local"`` reads ``task.data_file`` in :func:`data_folder`, one JSON
object a line (rows ``{"id", "input", "answers"}``, optional ``context`` and
``meta``, need no code; see data/README.md); ``source="hub"`` reads the
original dataset with ``datasets.load_dataset`` as ``task.hub`` says
(``join``: several configs zipped row by row, for multi-parallel FLORES).

``load_splits`` draws disjoint train / dev / test sets from the pool: a
seeded shuffle of the pool's row order,

    order = shuffle(range(N), seed);  train = order[:a], dev = order[a:a+b],
    test = order[a+b:a+b+c],

so the same seed gives the same ids, and two tasks read from one
multi-parallel file (``flores:en-de``, ``flores:en-fr``) split the same rows
the same way.  Out-of-distribution and transfer pairs are data, not code
(:data:`GENERALIZATION`, drawn by :func:`load_eval_set`).

Every problem with the data raises :class:`DataError` (a ``ValueError``)
saying what is wrong and where, before any model is called.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tasks.base import Example, Task, row_answers
from ..tasks.registry import get_task

DATA_ENV = "SEO_LITE_DATA"
SOURCES = ("local", "hub")
COMMON_FIELDS = ("id", "input", "answers")


class DataError(ValueError):
    """Missing or malformed data, or a split that does not fit (raised before any model call)."""


# -- where the data is -----------------------------------------------------------------------
def shipped_data_folder() -> Path | None:
    """The JSONL samples that ship with seo_lite: the repository's ``data/``
    folder, which an installed package (wheel, ``pip install git+...``) carries
    as ``seo_lite/samples``; None if neither is there."""
    here = Path(__file__).resolve().parent.parent                # seo_lite/
    for folder in (here / "samples", here.parent / "data"):   # wheel, checkout (editable too)
        if folder.is_dir() and any(folder.glob("*.jsonl")):
            return folder
    return None


def data_folder(data_dir: str | os.PathLike | None = None) -> Path:
    """The local data folder: ``data_dir``, else ``$SEO_LITE_DATA``, else the
    samples that ship with the package (no configuration needed)."""
    if data_dir is None:
        env = os.environ.get(DATA_ENV, "").strip()
        if not env:
            folder = shipped_data_folder()
            if folder is None:
                raise DataError(f"no data folder: this installation carries no data samples; set "
                                f"the environment variable {DATA_ENV} to a folder of JSONL files, "
                                "pass data_dir=..., or use source='hub'")
            return folder
        folder, origin = Path(env).expanduser(), f"{DATA_ENV}={env}"
    else:
        folder, origin = Path(data_dir).expanduser(), f"data_dir={data_dir}"
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist ({origin}); point {DATA_ENV} "
                        "or data_dir= at the folder holding the JSONL files, or unset it to "
                        "use the samples that ship with seo_lite")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder ({origin}); {DATA_ENV} must name the folder "
                        "holding the JSONL files, not a file")
    return folder


# leading bytes of files that are not text at all, and what they are
_MAGIC = ((b"\x1f\x8b", "gzip-compressed (decompress it first: gunzip)"),
          (b"BZh", "bzip2-compressed (decompress it first: bunzip2)"),
          (b"\xfd7zXZ\x00", "xz-compressed (decompress it first: unxz)"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first: unzstd)"),
          (b"PK\x03\x04", "a zip archive (extract the .jsonl file from it)"),
          (b"\xff\xfe", "UTF-16 text (re-save it as UTF-8)"),
          (b"\xfe\xff", "UTF-16 text (re-save it as UTF-8)"))


def _not_text(path: Path, head: bytes, raw: bytes, lineno: int, offset: int,
              error: UnicodeDecodeError) -> DataError:
    """The one error for a file that is not UTF-8 text, saying what it looks like."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return DataError(f"{path}: not UTF-8 text, the file is {what}")
    bad = raw[error.start]
    where = f"byte 0x{bad:02x} at offset {offset + error.start}, line {lineno}"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / max(len(head), 1)
    if printable > 0.9:             # mostly ASCII with a few high bytes: a legacy 8-bit encoding
        hint = ("it looks like Latin-1 / Windows-1252 text: re-save it as UTF-8 "
                f"(e.g. iconv -f latin1 -t utf-8 {path.name} > fixed.jsonl)")
    else:
        hint = "it looks like binary data, not JSON Lines; is it compressed or the wrong file?"
    return DataError(f"{path}: not UTF-8 text ({where}); {hint}")


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line, checking that the file
    is UTF-8 text (a leading BOM is fine) and that every line is a JSON object
    with the ``required`` fields."""
    rows = []
    offset = 0
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(0)
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_text(path, head, raw, lineno, offset, e) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            offset += len(raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if "\x00" in line:
                    raise DataError(f"{path}: line {lineno} holds NUL bytes: this is not a JSON "
                                    "Lines text file (binary data, or UTF-16 without a BOM?)") from None
                raise DataError(f"{path.name} line {lineno}: not valid JSON ({e.msg} at column "
                                f"{e.colno}) in {path.parent}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path.name} line {lineno}: expected a JSON object, "
                                f"got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(f"{path.name} line {lineno}: missing field(s) "
                                f"{', '.join(repr(k) for k in missing)} (the line has: "
                                f"{', '.join(sorted(row)) or 'no fields'})")
            rows.append((lineno, row))
    if not rows:
        raise DataError(f"{path} is empty: no examples in it")
    return rows


# -- one loader --------------------------------------------------------------------------------
def _row_to_example(task: Task, row: dict) -> Example:
    mapper = getattr(task, "example_from_row", None)
    if mapper is not None:
        return mapper(row)
    answers = row_answers(row)
    if not isinstance(row["input"], str):
        raise ValueError("'input' must be a string")
    return Example(str(row["id"]), row["input"], answers, row.get("context"),
                   dict(row.get("meta") or {}))


def _load_local(task: Task, data_dir, limit: int | None) -> list[Example]:
    folder = data_folder(data_dir)
    name = getattr(task, "data_file", "")
    if not name:
        raise DataError(f"task {task.name!r} names no local data file (set its data_file attribute)")
    path = folder / name                        # an absolute data_file stands on its own
    if not path.is_file() and Path(name).is_absolute():
        raise DataError(f"task {task.name!r} reads {name}, which "
                        f"{'is not a file' if path.exists() else 'does not exist'}")
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.jsonl"))
        raise DataError(f"task {task.name!r} expects the file {name} in {folder}, which is not "
                        f"there; JSONL files present: {', '.join(present) or 'none'}")
    required = getattr(task, "required_fields", None) or (
        () if getattr(task, "example_from_row", None) else COMMON_FIELDS)
    examples, first_line = [], {}
    for lineno, row in read_jsonl(path, tuple(required)):
        try:
            ex = _row_to_example(task, row)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{name} line {lineno}: {e}") from None
        if ex.id in first_line:
            raise DataError(f"{name} line {lineno}: duplicate id {ex.id!r} (first on line "
                            f"{first_line[ex.id]}); ids must be unique for disjoint splits")
        first_line[ex.id] = lineno
        examples.append(ex)
        if limit is not None and len(examples) >= limit:
            break
    return examples


def _hub_load(path: str, **kwargs):
    """``datasets.load_dataset(path, **kwargs)``; any failure becomes one DataError.
    A dataset that is still a loading script (refused by datasets >= 4, and by 3.x
    without trust_remote_code) is read from the Hub's Parquet conversion: its
    task asks for ``revision="refs/convert/parquet"`` in its ``hub`` spec."""
    from datasets import load_dataset

    try:
        return load_dataset(path, **kwargs)
    except Exception as e:                      # network, gated repo, unknown config, ...
        error = e
    text = str(error)
    hint = ""
    if "revision" not in kwargs and ("script" in text.lower() or "trust_remote_code" in text):
        hint = (" The dataset is a loading script: ask for its Parquet conversion with "
                "revision='refs/convert/parquet' in the task's hub spec.")
    raise DataError(f"could not load {path} {kwargs} from the Hugging Face Hub "
                    f"({type(error).__name__}: {text[:300]}).{hint} Offline, use "
                    f"source='local' (the samples that ship with seo_lite, or {DATA_ENV}).")


def _load_hub(task: Task, limit: int | None) -> list[Example]:
    spec: dict[str, Any] = dict(getattr(task, "hub", None) or {})
    if not spec or "path" not in spec or not hasattr(task, "example_from_hub"):
        raise DataError(f"task {task.name!r} has no Hub source; use source='local'")
    split = spec.get("split", "test") + (f"[:{limit}]" if limit is not None else "")
    if spec.get("join"):
        tables = [_hub_load(spec["path"], name=cfg, split=split) for cfg in spec["join"]]
        if len({len(t) for t in tables}) != 1:
            raise DataError(f"{spec['path']}: configs {spec['join']} differ in length; "
                            "they must be row-aligned")
        rows = [dict(zip(spec["join"], parts)) for parts in zip(*tables)]
    else:
        kwargs = {k: spec[k] for k in ("name", "data_files", "revision") if k in spec}
        rows = _hub_load(spec["path"], split=split, **kwargs)
    examples = []
    for i, row in enumerate(rows):
        try:
            examples.append(task.example_from_hub(row, i))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(f"{spec['path']} row {i} does not map onto {task.name!r} "
                            f"({type(e).__name__}: {e}); has the dataset changed?") from None
    return examples


def load_examples(task: Task | str, *, source: str = "local",
                  data_dir: str | os.PathLike | None = None,
                  limit: int | None = None) -> list[Example]:
    """The task's pool of examples, in file (or dataset) order."""
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {SOURCES}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    task = get_task(task)
    return _load_hub(task, limit) if source == "hub" else _load_local(task, data_dir, limit)


# -- seeded, disjoint splits -------------------------------------------------------------------
@dataclass
class Splits:
    """Disjoint train / dev / test examples of one task, drawn with one seed."""

    task: str
    seed: int
    train: list[Example] = field(default_factory=list)
    dev: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    source: str = "local"

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def seeded_order(n: int, seed: int) -> list[int]:
    """A permutation of ``range(n)`` that depends only on ``n`` and ``seed``."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def _check_sizes(**sizes) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"split size {name} must be an integer >= 0, got {value!r}")


def _too_few(task: Task, asked: str, total: int, available: int, source: str) -> DataError:
    if source == "local":
        where = getattr(task, "data_file", "")
    else:
        where = (getattr(task, "hub", None) or {}).get("path")
    return DataError(f"asked for {asked} = {total} examples of {task.name!r}, but {where} "
                     f"has only {available}; ask for fewer or use the full dataset")


def load_splits(task: Task | str, *, train: int, dev: int, test: int, seed: int = 0,
                source: str = "local", data_dir: str | os.PathLike | None = None) -> Splits:
    """Disjoint train / dev / test splits of the requested sizes, reproducible for a seed."""
    _check_sizes(train=train, dev=dev, test=test)
    task = get_task(task)
    pool = load_examples(task, source=source, data_dir=data_dir)
    total = train + dev + test
    if total > len(pool):
        raise _too_few(task, f"train={train} + dev={dev} + test={test}", total, len(pool), source)
    shuffled = [pool[i] for i in seeded_order(len(pool), seed)]
    return Splits(task.name, seed, shuffled[:train], shuffled[train:train + dev],
                  shuffled[train + dev:total], source)


# -- out-of-distribution and transfer pairs, as data --------------------------------------------
GENERALIZATION: dict[str, dict[str, Any]] = {
    # learn on HotpotQA, test on another multi-hop dataset
    "ood_hotpotqa_to_2wiki": {"train": "hotpotqa_closedbook", "eval": ["2wikimultihopqa"]},
    # learn on one news test set, test on FLORES (Wikipedia-style sentences)
    "ood_wmt23_to_flores_de-en": {"train": "wmt23:de-en", "eval": ["flores:de-en"]},
    # learn one translation direction, test on others (same FLORES sentences file)
    "transfer_flores_en-de": {"train": "flores:en-de",
                              "eval": ["flores:en-fr", "flores:en-cs", "flores:en-ru",
                                       "flores:en-zh", "flores:en-ja"]},
    "transfer_flores_de-en": {"train": "flores:de-en",
                              "eval": ["flores:fr-en", "flores:cs-en", "flores:ru-en",
                                       "flores:zh-en", "flores:ja-en"]},
}


def load_eval_set(pair: str, eval_task: Task | str, *, size: int, train: int, dev: int,
                  seed: int = 0, source: str = "local",
                  data_dir: str | os.PathLike | None = None) -> list[Example]:
    """``size`` examples of ``eval_task`` for the generalization ``pair``.

    ``train`` / ``dev`` / ``seed`` are those of the training task's
    :func:`load_splits`; every example it trained or validated on (same id,
    or same input text) is left out, and the rest is taken in the same
    seeded order -- so for two directions of one multi-parallel file the
    eval examples are exactly the training task's test rows."""
    if pair not in GENERALIZATION:
        raise DataError(f"unknown generalization pair {pair!r}; known: {', '.join(GENERALIZATION)}")
    _check_sizes(size=size, train=train, dev=dev)
    spec = GENERALIZATION[pair]
    target = get_task(eval_task)
    allowed = {get_task(n).name for n in spec["eval"]}
    if target.name not in allowed:
        raise DataError(f"{pair!r} evaluates on {', '.join(sorted(allowed))}, not {target.name!r}")
    seen = load_splits(spec["train"], train=train, dev=dev, test=0, seed=seed, source=source,
                       data_dir=data_dir)
    seen_ids = {ex.id for ex in seen.train + seen.dev}
    seen_inputs = {" ".join(ex.input.split()) for ex in seen.train + seen.dev}
    pool = load_examples(target, source=source, data_dir=data_dir)
    fresh = [pool[i] for i in seeded_order(len(pool), seed)
             if pool[i].id not in seen_ids and " ".join(pool[i].input.split()) not in seen_inputs]
    if size > len(fresh):
        raise _too_few(target, f"size={size} (after leaving out the {len(seen_ids)} examples "
                       f"{spec['train']} trained and validated on)", size, len(fresh), source)
    return fresh[:size]


__all__ = ["DataError", "DATA_ENV", "SOURCES", "Splits", "GENERALIZATION", "data_folder",
           "shipped_data_folder", "read_jsonl", "load_examples", "load_splits", "load_eval_set", "seeded_order"]
