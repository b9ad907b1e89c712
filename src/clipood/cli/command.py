"""A command of ``clipood``: its name, help, parser and run function, one entry of the table ``parser.COMMANDS``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

__all__ = ["Command", "progress"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # one line in 'clipood --help'
    description: str  # the top of 'clipood NAME --help'
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # the exit status


def progress(args: argparse.Namespace) -> bool:
    """Progress bars unless --no-progress."""
    return not getattr(args, "no_progress", False)
