"""SIGTERM/SIGINT as a flag the training loop reads after each step, so it checkpoints before stopping."""

from __future__ import annotations

import signal
from contextlib import contextmanager

__all__ = ["handling_stop_signals", "stop_signals"]


@contextmanager
def handling_stop_signals(on_signal):
    """Call ``on_signal(signum)`` on SIGTERM/SIGINT instead of dying; the old handlers come back after."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: on_signal(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


@contextmanager
def stop_signals():
    """Turn SIGTERM/SIGINT into a flag (``flag['signal']``) the loop checks after each step."""
    flag = {"signal": None}
    with handling_stop_signals(lambda signum: flag.__setitem__("signal", signum)):
        yield flag
