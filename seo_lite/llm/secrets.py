"""Secret option names: which model options hold credentials, and keeping them out of files.

A model option whose *name* says it is a secret (``api_key``, ``hf_token``,
``password``, ``credentials``, ``authorization``, ...) is handed to the
model's constructor and nowhere else: :class:`~seo_lite.method.config.SEOConfig`
leaves it out of ``config.json`` and shows it as ``'<redacted>'``, and figure footnotes skip it.  A URL option loses its ``user:password@`` part.
:func:`files_containing` is the check that no secret reached a file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

# A name is secret when it ends in a secret word (``api_key``, ``hf_token``,
# ``credentials``), starts with ``auth``, or holds a secret word between
# separators (``token_file``, ``bearer-value``); ``max_new_tokens`` is not.
SECRET_OPTION = re.compile(
    r"^(?:.*[_-])?(?:api_?key|key|token|secret|passw(?:or)?d|credentials?)$|^auth"
    r"|(?:^|[_-])(?:api[_-]?key|key|token|secret|password|passwd|authorization|bearer)(?:$|[_-])",
    re.IGNORECASE)
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    """Option names that hold credentials (``api_key``, ``hf_token``, ...)."""
    return bool(SECRET_OPTION.search(str(name)))


def _strip_userinfo(value: Any) -> Any:
    """``scheme://user:pw@host/...`` -> ``scheme://host/...``; other values unchanged."""
    if not isinstance(value, str) or "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return REDACTED
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def public_options(options: dict, *, mark: bool = False) -> dict:
    """``options`` without secrets: secret-named keys dropped (or shown as
    ``'<redacted>'`` with ``mark=True``), credentials cut out of URLs."""
    out = {}
    for k, v in options.items():
        if is_secret_name(k):
            if mark:
                out[k] = REDACTED
            continue
        out[k] = _strip_userinfo(v)
    return out


def files_containing(folder: str | os.PathLike, values: Iterable[str]) -> list[Path]:
    """Files under ``folder`` that contain any of ``values`` (e.g. an API key):
    the check that a secret reached no run file."""
    needles = [str(v).encode() for v in values if v and len(str(v)) >= 4]
    if not needles:
        return []
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and any(n in p.read_bytes() for n in needles))
