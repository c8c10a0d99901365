"""Progress of a model call: bars where they render, plain lines elsewhere.

A caller asks for progress with ``progress=True`` or a description
(``llm.generate(reqs, progress="D_t")``); the call layer then counts the
answers of a backend that yields them as they arrive (:func:`reported`).

* In Jupyter: tqdm's widget bar.
* In a terminal: tqdm's text bar.
* Anywhere else (CI logs, a redirected file, papermill): no control codes,
  a plain line when about every 10% more is done or 30 s have passed, and
  one at the end.

``SEO_LITE_PROGRESS=bar|lines|off`` overrides the choice (papermill runs
should set ``lines``: their kernel looks like an interactive Jupyter kernel).
"""
from __future__ import annotations

import os
import sys
import time

ENV_PROGRESS = "SEO_LITE_PROGRESS"


def _in_jupyter() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_style(stream=None) -> str:
    """``"bar"`` (tqdm, widget or text), ``"lines"`` or ``"off"``."""
    forced = os.environ.get(ENV_PROGRESS, "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    if _in_jupyter():
        return "bar"
    stream = stream or sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class LineProgress:
    """tqdm's ``update``/``close`` as occasional plain lines on stderr."""

    def __init__(self, total: int, desc: str, *, every: float = 0.1, seconds: float = 30.0,
                 stream=None):
        self.total, self.desc, self.n = total, desc, 0
        self.step = max(1, int(total * every))
        self.seconds, self.stream = seconds, stream or sys.stderr
        self.t0 = self.t_last = time.monotonic()
        self.n_last = 0
        self.postfix = ""

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self.total:
            return                                 # the final line comes from close()
        if self.n - self.n_last >= self.step or now - self.t_last >= self.seconds:
            self._line(now)

    def _line(self, now: float) -> None:
        pct = 100 * self.n / self.total if self.total else 100
        extra = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} ({pct:.0f}%) {now - self.t0:.0f} s{extra}",
              file=self.stream, flush=True)
        self.t_last, self.n_last = now, self.n

    def close(self) -> None:
        if self.n and self.n != self.n_last:
            self._line(time.monotonic())


def reporter(total: int, desc: str, *, initial: int = 0, leave: bool = False):
    """A progress reporter with tqdm's ``update(n)`` and ``close()`` in the
    style that suits the output (see the module docstring), or None for ``off``."""
    style = progress_style()
    if style == "off":
        return None
    if style == "lines":
        bar = LineProgress(total, desc)
        bar.n = bar.n_last = initial
        return bar
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=leave)


def reported(pairs, total: int, progress: bool | str, kind: str):
    """A backend's ``(index, answer)`` pairs passed on as they arrive, counted on a
    reporter when the caller asked for progress (its description, else ``kind``)."""
    bar = reporter(total, progress if isinstance(progress, str) else kind) if progress else None
    try:
        for pair in pairs:
            yield pair
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
