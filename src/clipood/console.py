"""One-line notes and warnings on stderr, from the main process only (rank 0 under torchrun),
and the progress display.

Nothing is silent: a fallback, an ignored option or random weights are each said once,
in one line, beside the progress bars, without a traceback. Progress bars are tqdm's on a
terminal; when stderr is not a terminal (a log file, a batch job) they would fill the log
with carriage returns and escape codes, so there the outermost bars print a plain line now
and then and at the end, and nested ones print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Optional

from tqdm.auto import tqdm

__all__ = ["LineProgress", "note", "progress_bar", "warn", "write"]

LINE_INTERVAL_S = 30.0  # a plain progress line at most this often in a log

_said: set[str] = set()


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def note(message: str, *, once: bool = False) -> None:
    """Something the user should know happened (a fallback, a default taken)."""
    if once:
        if message in _said:
            return
        _said.add(message)
    if _main_process():
        print(f"clipood: note: {message}", file=sys.stderr, flush=True)


def warn(message: str, *, once: bool = True) -> None:
    """Something the user asked for that does not apply (said once per process)."""
    if once and message in _said:
        return
    _said.add(message)
    if _main_process():
        print(f"clipood: warning: {message}", file=sys.stderr, flush=True)


def _terminal() -> bool:
    return sys.stderr.isatty()


class LineProgress:
    """tqdm's interface for logs: 'desc: n/total unit (rate, postfix)' lines, no carriage returns."""

    def __init__(self, iterable: Optional[Iterable] = None, *, total: Optional[int] = None, initial: int = 0,
                 desc: str = "", unit: str = "it", disable: bool = False, leave: bool = True,
                 interval: float = LINE_INTERVAL_S, **_ignored):
        self.iterable, self.n, self.desc, self.unit = iterable, initial, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.silent = disable or not leave or not _main_process()  # nested bars say nothing in a log
        self.interval, self.postfix, self._initial = interval, "", initial
        self._t0 = self._last = time.monotonic()
        self._closed = False

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval and (self.total is None or self.n < self.total):
            self._last = now
            self._line()

    def set_postfix(self, **fields) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in fields.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _line(self, end: bool = False) -> None:
        if self.silent:
            return
        seconds = time.monotonic() - self._t0
        done = self.n - self._initial
        rate = f", {done / seconds:.3g} {self.unit}/s" if seconds > 0 and done else ""
        of = f"/{self.total}" if self.total is not None else ""
        took = f" in {seconds:.0f} s" if end else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}{took}{rate}{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n > self._initial:
                self._line(end=True)


def progress_bar(iterable: Optional[Iterable] = None, **kwargs):
    """A tqdm bar on a terminal, a LineProgress in a log (same arguments as tqdm)."""
    if _terminal():
        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, **kwargs)


def write(message: str) -> None:
    """A line on stderr that does not break a progress bar on a terminal."""
    if _terminal():
        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)
