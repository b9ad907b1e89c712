"""``clipood data build shapes|emoji``: the bundled datasets, built into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cache import cache_root
from ..data.emoji.build import DEFAULT_PER_CLASS, DEFAULT_SIZE
from ..data.synthetic import MAX_PER_CLASS, SHAPES_PER_CLASS, SHAPES_SIZE, SIZES
from .command import Command, progress

__all__ = ["COMMANDS"]


def _arguments(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    b = dsub.add_parser("build", help="build a bundled dataset into a folder (DomainBed layout).")
    b.add_argument("name", choices=("shapes", "emoji"),
                   help="shapes: 8 shapes x 4 drawing styles, drawn locally. emoji: the same things drawn by 6 "
                        "emoji designers (domains), rendered from pinned npm packages (docs/benchmark.md).")
    b.add_argument("--out", metavar="DIR", help=f"output folder (default: {cache_root()}/datasets/NAME; "
                   f"$CLIPOOD_CACHE sets the first part).")
    b.add_argument("--per-class", type=int, default=None,
                   help=f"images per class and domain, 1 to {MAX_PER_CLASS} (default: {SHAPES_PER_CLASS} for shapes; "
                        f"{DEFAULT_PER_CLASS} for emoji, the first ones plain renderings of the class's emoji, the "
                        f"rest re-rendered poses).")
    b.add_argument("--size", type=int, default=None, help=f"image side in pixels, {SIZES[0]} to {SIZES[1]} (default: "
                   f"{SHAPES_SIZE} for shapes, {DEFAULT_SIZE} for emoji).")
    e = b.add_argument_group("emoji options")
    e.add_argument("--sources", metavar="DIR", help="folder with the npm packages (data-sources or its node_modules; "
                   "default: $CLIPOOD_EMOJI_SOURCES, else ./data-sources, else the clipood checkout's data-sources).")
    e.add_argument("--max-classes", type=int, metavar="N", help="a slice: N classes spread over the sorted class list.")
    e.add_argument("--classes", metavar="NAMES", help="a slice: comma-separated class names (e.g. dog,bicycle).")
    e.add_argument("--domains", metavar="NAMES", help="only these designers, comma-separated (default: all six: "
                   "emojione, fluent, fluent-mono, noto, openmoji, twemoji); the pretraining set follows.")
    e.add_argument("--pretrain-set", action="store_true", help="also render every emoji of every domain with a "
                   "caption into OUT-pretrain/ (captions.csv) for contrastive pretraining (slower).")
    e.add_argument("--force", action="store_true", help="rebuild even when OUT already holds this build.")
    e.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def _names(text) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else cache_root() / "datasets" / args.name
    if args.name == "emoji":
        from ..data.emoji import build_emoji
        report = build_emoji(out, sources=args.sources, **({"size": args.size} if args.size is not None else {}),
                             **({"images_per_class": args.per_class} if args.per_class is not None else {}),
                             max_classes=args.max_classes, classes=_names(args.classes), domains=_names(args.domains),
                             pretrain=args.pretrain_set, force=args.force, progress=progress(args))
        print(report.summary())
        return 0
    from ..console import warn
    from ..data.synthetic import check_build_options, make_shapes_dataset
    for flag, value in (("--sources", args.sources), ("--max-classes", args.max_classes),
                        ("--classes", args.classes), ("--domains", args.domains),
                        ("--pretrain-set", args.pretrain_set or None), ("--force", args.force or None)):
        if value is not None:
            warn(f"{flag}: applies to 'data build emoji' only; ignored for shapes")
    per_class = SHAPES_PER_CLASS if args.per_class is None else args.per_class
    size = SHAPES_SIZE if args.size is None else args.size
    check_build_options(per_class, size)
    make_shapes_dataset(out, per_class=per_class, size=size)
    print(out)
    return 0


COMMANDS = [Command("data", "build a bundled dataset.", "Build a bundled dataset.", _arguments, _run)]
