"""The ``clipood`` argument parser, made from the table of commands: each brings its parser and its run."""

from __future__ import annotations

import argparse
import re

from .. import __version__
from . import data, demo, experiments, info, runs, tools
from .command import Command

__all__ = ["COMMANDS", "build_parser"]

# Every command, in the order 'clipood --help' lists them.
COMMANDS: list[Command] = [*runs.COMMANDS, *info.COMMANDS, *data.COMMANDS, *demo.COMMANDS, *experiments.COMMANDS,
                           *tools.COMMANDS]

# argparse reads '-1e-3' as an option; accept negative numbers in every notation as values
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipood",
        description="CLIPood: fine-tune CLIP models to generalise to unseen domains and classes "
                    "(Margin Metric Softmax + Beta Moving Average, ICML 2023).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"clipood {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    for action in [parser, *_subparsers(parser)]:
        action._negative_number_matcher = NEGATIVE_NUMBER  # '--lr -1e-3' is a value (then a range error)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                found += [p, *_subparsers(p)]
    return found
