"""The ``clipood`` command.

Each command brings its parser and its run function (``parser.COMMANDS``: ``runs``, ``info``,
``data``, ``demo``, ``experiments``, ``tools``). The flags of config options are generated from
the config dataclasses (``flags``), so every option has one default and one help text, shown by
``--help``. Precedence: defaults < --profile < --config YAML < flags. User
errors and environment faults (a missing file, a full disk, a closed pipe) print one line
``clipood: error: ...`` and exit 2; an option given that does not apply is one
``clipood: warning:`` line. ``CLIPOOD_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import _guard  # noqa: F401  (first: a deleted working folder is said before torch fails on it)

# isort: split
from ..errors import ClipoodError, Interrupted
from .flags import config_from_args
from .parser import build_parser

__all__ = ["build_parser", "config_from_args", "dispatch", "main"]


def _debug() -> bool:
    return os.environ.get("CLIPOOD_DEBUG", "").lower() not in ("", "0", "false", "no")


class OutputError(ClipoodError):
    """The command's own output (stdout) could not be written: onto a full disk, /dev/full, a closed file."""


class _Output:
    """sys.stdout for the length of a command: a write that fails is an OutputError naming stdout (a closed
    pipe stays a BrokenPipeError, which is no error), not an OSError without a file name."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, name: str, *args):
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            _output_to_devnull()  # what is left of the output goes nowhere: exiting must not fail again
            raise OutputError(f"<stdout>: cannot write the command's output ({e.strerror or e}); redirect it "
                              f"somewhere writable") from None

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _output_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _environment_fault(e: OSError) -> str:
    """The failed path and why; a full disk with no file name is said as such, never as the current folder."""
    from ..io import DiskFull, is_disk_full
    if is_disk_full(e):
        if e.filename:
            return str(DiskFull(Path(e.filename)))
        return f"the disk is full ({e.strerror or e}) while writing a file this error does not name; free some space"
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    stdout, sys.stdout = sys.stdout, _Output(sys.stdout)
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit:  # --help, --version or a usage error: argparse printed and exits
            sys.stdout.flush()  # (it drops a failed write of its own; the flush says it)
            raise
        code = dispatch(args)
        sys.stdout.flush()  # output that fails to be written is this command's error, not an exit-time traceback
        return code
    except BrokenPipeError:  # 'clipood models | head -1': the reader has gone, which is not an error
        _output_to_devnull()
        return 0
    except ClipoodError as e:
        if _debug():
            raise
        print(f"clipood: error: {e}", file=sys.stderr)
        return 130 if isinstance(e, Interrupted) else 2
    except OSError as e:  # the environment: a file that cannot be read or written, a full disk
        if _debug():
            raise
        print(f"clipood: error: {_environment_fault(e)} (CLIPOOD_DEBUG=1 shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clipood: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a library's own error type for a full disk (safetensors, torch's C++ writer)
        from ..io import is_disk_full
        if _debug() or not is_disk_full(e):
            raise
        print(f"clipood: error: the disk is full while writing a file this error does not name ("
              f"{' '.join(str(e).split())[:300] or type(e).__name__}); "
              f"free some space (CLIPOOD_DEBUG=1 shows where)", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


def dispatch(args: argparse.Namespace) -> int:
    """Run the command ``args`` were parsed for (each brings its run function: ``parser.COMMANDS``)."""
    return args.run(args)
