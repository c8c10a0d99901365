"""Persistent call cache: a warm re-run makes no model call.

Each answer is one small JSON file, ``<root>/<kk>/<key>.json``, where ``key``
is the SHA-256 of everything that changes the answer: the model's identity
(backend, model id and revision or file hash, quantization, dtype, device),
the messages, every generation parameter and, when sampling, the sample
index.  API keys never enter the key or the file.

Why one file per entry: a write goes to a temporary file in the entry's own
folder, ``.<key>.json.<host>.<pid>.<random>.tmp``, renamed into place
(``os.replace`` is atomic, also on NFS within one folder), so processes
sharing one cache folder (a grid's cells, on one machine or many hosts) never
see a half-written entry and need no lock (a shared filesystem handles
renames, not locks, reliably); two writers of one key write the same answer.
A killed writer's temporary file is swept by the next write of that key if
its pid no longer runs on this host (another host's may be in progress).
Each file also stores the full key payload, so a read checks it holds the
answer asked for; an entry that cannot be read, does not match or has the
wrong shape for the request is reported, counted and recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import uuid
import warnings
from pathlib import Path
from typing import Any

CACHE_VERSION = 1
ENV_CACHE = "SEO_LITE_CACHE"

class CacheError(RuntimeError):
    """The cache folder cannot be used."""

def _cache_off() -> bool:
    return os.environ.get(ENV_CACHE, "").lower() in ("off", "none", "0")

def cache_root() -> Path:
    """``$SEO_LITE_CACHE`` or ``$XDG_CACHE_HOME/seo_lite`` (``~/.cache/seo_lite``)."""
    if os.environ.get(ENV_CACHE) and not _cache_off():
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seo_lite"

def default_cache() -> "CallCache | None":
    """The call cache under :func:`cache_root`; ``SEO_LITE_CACHE=off`` disables it."""
    if _cache_off():
        return None
    return CallCache(cache_root() / "calls")

def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

#: This machine's name as temporary file names carry it (no dots: names are split on them).
HOST = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-") or "host"

def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` that a killed writer of this host
    left (its pid, in the file name, no longer runs here).  Writing a key
    again is when a killed write shows up, so that is when it is swept."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        host, _, rest = tmp.name[len(path.name) + 2:].partition(".")
        pid = rest.split(".", 1)[0]
        if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)

def _write_entry(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file named by host, pid and a
    random part in the same folder, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                     # exists, owned by someone else
        return True
    return True

class CallCache:
    """A folder of cached model answers, safe for concurrent processes."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            probe.write_text("ok")
            probe.read_text()
            probe.unlink()
        except OSError as e:
            raise CacheError(
                f"cannot use cache folder {self.root}: {e.strerror or e}. Point "
                f"{ENV_CACHE} (or cache=...) at a writable folder, or pass cache=None "
                f"to run without a cache.") from e

    @staticmethod
    def key_of(payload: dict) -> str:
        return hashlib.sha256(_canonical({"v": CACHE_VERSION, **payload}).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, payload: dict) -> tuple[dict | None, str | None]:
        """``(value, None)`` on a hit, ``(None, None)`` on a miss and
        ``(None, reason)`` for an entry that exists but cannot be trusted."""
        p = self.path(key)
        try:
            raw = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as e:
            return None, self._bad(p, f"unreadable ({e.strerror})")
        try:
            entry = json.loads(raw)
            if _canonical(entry["payload"]) != _canonical(payload):
                return None, self._bad(p, "holds a different request")
            value = entry["value"]
            if not isinstance(value, dict):
                raise TypeError("value is not an object")
            return value, None
        except (ValueError, KeyError, TypeError) as e:
            return None, self._bad(p, f"corrupt ({type(e).__name__}: {e})")

    def reject(self, key: str, why: str) -> str:
        """Report an entry that parsed but does not hold a usable answer (the
        caller checked its shape); it will be recomputed and overwritten."""
        return self._bad(self.path(key), f"corrupt ({why})")

    def _bad(self, path: Path, why: str) -> str:
        msg = f"cache entry {path} is {why}; recomputing it"
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
        return msg

    def put(self, key: str, payload: dict, value: dict) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(p)
        try:
            _write_entry(p, _canonical({"payload": payload, "value": value}))
        except OSError as e:            # a full or vanished shared disk: the answer is still good
            warnings.warn(f"cache entry {p} not written ({e.strerror or e}); going on without it",
                          RuntimeWarning, stacklevel=2)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json"))

    def __repr__(self):
        return f"CallCache({str(self.root)!r})"
