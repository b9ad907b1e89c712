"""``clipood models`` and ``clipood datasets``: what --arch / --pretrained and --dataset accept."""

from __future__ import annotations

import argparse

from .command import Command

__all__ = ["COMMANDS"]


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tags", action="store_true", help="also list each architecture's pretrained tags.")


def _models(args: argparse.Namespace) -> int:
    import open_clip

    from ..model import list_architectures
    from ..model.weights import clipood_tags
    for name in list_architectures():
        tags = open_clip.list_pretrained_tags_by_model(name) + clipood_tags(name) if args.tags else []
        print(name + (f"  [{', '.join(tags)}]" if tags else ""))
    return 0


def _datasets_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR", help="the folder holding the datasets (as passed with --dataset).")


def _datasets(args: argparse.Namespace) -> int:
    from ..data.datasets import status_rows
    from ..reporting.text import markdown_table
    where = "folder under ROOT" if args.root is None else f"status under {args.root}"
    print(markdown_table(["dataset", "family", "domains", "classes", where], status_rows(args.root)))
    return 0


COMMANDS = [
    Command("models", "list the open_clip architectures and their pretrained tags.",
            "List every architecture --arch accepts (open_clip's and clipood's bundled configs) and, with --tags, the "
            "pretrained tags --pretrained accepts for each: open_clip's (downloaded when online) and clipood's "
            "(shipped towers, made here or installed with 'clipood pretrain --install-as').",
            _models_arguments, _models),
    Command("datasets", "list the benchmark datasets (--dataset NAME) and whether they are found.",
            "List the registered benchmark datasets, their domains and classes, and where each is found (or "
            "expected) under --root. Layouts: docs/datasets.md.", _datasets_arguments, _datasets),
]
