"""Run directories: a run is data, and a crashed run resumes.

Layout of one run::

    run_dir/
      config.json          the SEOConfig (a run resumes only with the same one)
      splits.json          ids of the train / dev / test examples
      steps.jsonl          one JSON line per finished step (the source of truth)
      experience/step_000.md ...   E_t after each step, as Markdown (E_0 first)
      experience.md        the current experience
      checkpoint.json      {"completed_steps", "experience"}: a summary of the log
      final.json           dev/test scores with and without the experience (CIs)

Crash safety.  A step is finished when its line is in ``steps.jsonl``
(written in one ``write`` and ``fsync``-ed before anything else of that
step); on open, a line torn by a kill is cut off (:func:`_parse_log`) and the
checkpoint and Markdown files are rebuilt from the log.  Only JSON and Markdown are written, never pickle; every
file except the log is replaced atomically (:mod:`seo_lite.machinery.files`).
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from ..method.config import ConfigError, SEOConfig
from ..method.experience import Experience
from .files import atomic_write_text
from ..method.seo import Candidate, SEORun, StepDecision, StepRecord

def record_from_dict(d: dict) -> StepRecord:
    """A step record as ``steps.jsonl`` holds it (the inverse of ``StepRecord.to_dict``)."""
    cands = [Candidate(**{**c, "experience": Experience(tuple(c["experience"]))
                          if c["experience"] is not None else None,
                          "cut": tuple(c.get("cut", ())), "notes": tuple(c.get("notes", ()))})
             for c in d["candidates"]]
    return StepRecord(step=d["step"], experience_before=Experience(tuple(d["experience_before"])),
                      batch_ids=list(d["batch_ids"]), trials=list(d["trials"]), candidates=cands,
                      validation_ids=list(d["validation_ids"]),
                      current_scores=d.get("current_scores"), decision=StepDecision(**d["decision"]),
                      experience_after=Experience(tuple(d["experience_after"])),
                      usage=d.get("usage", {}), seconds=d.get("seconds", 0.0))



class RunError(RuntimeError):
    """A run directory that cannot be used as asked (clear message)."""


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")


def safe_run_path(root: str | os.PathLike, name: str) -> Path:
    """``root/name`` for a run name from a grid or a user, refusing names that
    could escape ``root`` (``..``, slashes, absolute paths, odd characters)."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise RunError(f"invalid run name {name!r}: use letters, digits and . _ = - "
                       "(no slashes, no '..', at most 128 characters)")
    root_p = Path(root).resolve()
    path = (root_p / name).resolve()
    if path.parent != root_p:
        raise RunError(f"run name {name!r} escapes the output folder {root_p}")
    return path


def _ours_before_config(p: Path) -> bool:
    """What a run killed before its config.json was in place can leave: the
    experience folder and temporary files of atomic writes."""
    return p.name == "experience" or (p.name.startswith(".") and p.name.endswith(".tmp"))


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- files ---------------------------------------------------------------------
    @property
    def log(self) -> Path:
        return self.path / "steps.jsonl"

    def _write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.path / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n",
                          fsync=True)

    def _write_experience(self, step: int, exp: Experience) -> None:
        title = "E_0 (initial experience)" if step == 0 else f"E_{step} (after step {step})"
        atomic_write_text(self.path / "experience" / f"step_{step:03d}.md", exp.to_markdown(title))

    # -- open / resume -------------------------------------------------------------
    def open(self, config: SEOConfig, splits) -> list[StepRecord]:
        """Create the run, or check it matches ``config`` and return its finished
        steps (as StepRecords) so training continues after them."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} exists and is not a folder")
        for parent in self.path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise RunError(f"cannot create the run directory {self.path}: "
                                   f"{parent} is a file, not a folder")
                break
        cfg_file = self.path / "config.json"
        ids = {k: [ex.id for ex in getattr(splits, k)] for k in ("train", "dev", "test")}
        if cfg_file.exists():
            old = self._read_config(cfg_file)
            diff = old.differences(config)
            if diff:
                lines = "; ".join(f"{k}: run has {a!r}, asked {b!r}" for k, (a, b) in sorted(diff.items()))
                raise RunError(f"{self.path} holds a run with a different config ({lines}). "
                               "Use another output folder, or the run's own settings to resume it.")
            old_ids = self._read_json("splits.json", required=False)
            if old_ids is not None and old_ids != ids:
                raise RunError(f"{self.path} was made with other data splits (the data files "
                               "or the loader changed); start a new run directory")
        elif self.path.is_dir() and any(not _ours_before_config(p) for p in self.path.iterdir()):
            found = sorted(p.name for p in self.path.iterdir() if not _ours_before_config(p))[:5]
            raise RunError(f"{self.path} is not empty and is not a run directory "
                           f"(found {', '.join(found)}); choose a new or empty folder")
        try:
            (self.path / "experience").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create the run directory {self.path}: {e.strerror or e}") from None
        self._remove_stale_temporaries()
        self._write_json("config.json", config.to_dict())
        self._write_json("splits.json", ids)
        records = _records(self._read_log(), self.log)[: config.steps]
        initial = Experience(config.initial_experience)
        self._write_experience(0, initial)
        for r in records:
            self._write_experience(r.step + 1, r.experience_after)
        self._sync_checkpoint(len(records), records[-1].experience_after if records else initial)
        return records

    def _remove_stale_temporaries(self) -> None:
        """Delete ``.<name>.*.tmp`` files that a kill inside ``atomic_write_text``
        left (the file they were to replace is intact or rebuilt from the log)."""
        for folder in (self.path, self.path / "experience", self.path / "eval"):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)

    def _read_config(self, cfg_file: Path) -> SEOConfig:
        try:
            return SEOConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8")))
        except (ValueError, ConfigError, TypeError) as e:
            raise RunError(f"{cfg_file} is not a readable SEO config ({e}); "
                           "this folder is not a run directory of this version") from e

    def _read_json(self, name: str, required: bool = True):
        p = self.path / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if required:
                raise RunError(f"{p} is missing")
            return None
        except ValueError as e:
            raise RunError(f"{p} is not valid JSON ({e})") from e

    def _read_log(self) -> list[dict]:
        """The finished steps; cuts off a torn last line (a kill mid-write)."""
        if not self.log.exists():
            return []
        data = self.log.read_bytes()
        out, good_bytes, damaged = _parse_log(data, self.log)
        if damaged:
            warnings.warn(f"{self.log}: last line is damaged ({damaged}); dropping it, "
                          "its step will run again", RuntimeWarning)
        if good_bytes != len(data):
            warnings.warn(f"{self.log}: dropping an unfinished last line "
                          f"({len(data) - good_bytes} bytes) left by an interrupted write",
                          RuntimeWarning)
            with open(self.log, "r+b") as f:
                f.truncate(good_bytes)
                f.flush()
                os.fsync(f.fileno())
        return out

    def _sync_checkpoint(self, completed_steps: int, exp: Experience) -> None:
        """checkpoint.json and experience.md after ``completed_steps`` steps ending in ``exp``."""
        want = {"completed_steps": completed_steps, "experience": exp.to_list()}
        try:
            have = json.loads((self.path / "checkpoint.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            have = None
        except ValueError:
            warnings.warn(f"{self.path / 'checkpoint.json'} is corrupt; rebuilt from steps.jsonl",
                          RuntimeWarning)
            have = None
        if have != want:
            self._write_json("checkpoint.json", want)
        atomic_write_text(self.path / "experience.md", exp.to_markdown())

    # -- append a finished step ------------------------------------------------------
    def append(self, record) -> None:
        line = json.dumps(record.to_dict(), ensure_ascii=False) + "\n"
        with open(self.log, "ab") as f:
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self._write_experience(record.step + 1, record.experience_after)
        self._sync_checkpoint(record.step + 1, record.experience_after)

    def write_final(self, results: dict) -> None:
        self._write_json("final.json", results)


def _parse_log(data: bytes, log: Path) -> tuple[list[dict], int, str | None]:
    """The step records of ``steps.jsonl``'s bytes: ``(records, bytes they
    take, why a complete last line was dropped or None)``.  What follows the
    last newline (a torn write) is left out; a complete last line that is not
    a step record is dropped; a bad line anywhere else is a :class:`RunError`.
    Lines are decoded one by one: a kill can cut a multi-byte character."""
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]     # tail: bytes after the last newline
    out, good_bytes = [], 0
    for i, line in enumerate(complete):
        try:
            rec = json.loads(line.decode("utf-8"))
            if not isinstance(rec, dict) or "step" not in rec:
                raise ValueError("not a step record")
        except ValueError as e:
            if i == len(complete) - 1 and not tail:
                return out, good_bytes, str(e)
            raise RunError(f"{log}: line {i + 1} is corrupt ({e}); the log is "
                           "damaged beyond a crash during a write") from e
        out.append(rec)
        good_bytes += len(line) + 1
    return out, good_bytes, None


def _records(dicts: list[dict], log: Path, *, lenient_last: bool = False) -> list[StepRecord]:
    """Step records of the log's lines, in order; a line that is not one is a
    :class:`RunError` (with ``lenient_last``, a damaged last line of a run that
    is still going or crashed is left out)."""
    records = []
    for i, d in enumerate(dicts):
        try:
            records.append(record_from_dict(d))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if lenient_last and i == len(dicts) - 1:
                break
            raise RunError(f"{log}: line {i + 1} is not a step record "
                           f"({type(e).__name__}: {e}); the log is damaged") from None
        if records[-1].step != i:
            raise RunError(f"{log}: line {i + 1} holds step {records[-1].step!r}, "
                           f"expected {i}; the log is not one run's steps in order")
    return records


def load_run(path: str | os.PathLike) -> tuple[SEORun, dict | None]:
    """Read a run directory back as an :class:`~seo_lite.method.seo.SEORun` (and its
    ``final.json`` results, or None).  Figures and reports start here."""
    rd = RunDir(path)
    if not (rd.path / "config.json").is_file():
        raise RunError(f"{rd.path} is not a run directory (no config.json)")
    config = rd._read_config(rd.path / "config.json")
    dicts = _parse_log(rd.log.read_bytes(), rd.log)[0] if rd.log.exists() else []
    run = SEORun(config, _records(dicts, rd.log, lenient_last=True), Experience(config.initial_experience), str(rd.path))
    final = rd._read_json("final.json", required=False)
    return run, final
