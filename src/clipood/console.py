"""One-line notes and warnings on stderr, from the main process only (rank 0 under torchrun).

Nothing is silent: a fallback, an ignored option or random weights are each said once,
in one line, beside the progress bars, without a traceback.
"""

from __future__ import annotations

import os
import sys

__all__ = ["note", "warn"]

_said: set[str] = set()


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def note(message: str) -> None:
    """Something the user should know happened (a fallback, a default taken)."""
    if _main_process():
        print(f"clipood: note: {message}", file=sys.stderr, flush=True)


def warn(message: str, *, once: bool = True) -> None:
    """Something the user asked for that does not apply (said once per process)."""
    if once and message in _said:
        return
    _said.add(message)
    if _main_process():
        print(f"clipood: warning: {message}", file=sys.stderr, flush=True)
