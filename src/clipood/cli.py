"""The ``clipood`` command.

Flags are generated from the config dataclasses (``config.py``), so every option has
one default and one help text, shown by ``--help``. Precedence: defaults < --config
YAML < flags. User errors print one line ``clipood: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .config import Config, field_type, flag_name, from_dict, iter_fields, load_yaml, validate
from .errors import ClipoodError
from .pretraining.config import SECTIONS as PRETRAIN_SECTIONS
from .pretraining.config import PretrainConfig

TRAIN_SECTIONS = ("model", "data", "loss", "averaging", "optim", "train", "eval", "run")
ZEROSHOT_SECTIONS = ("model", "data", "eval", "run", "train")
EVAL_SECTIONS = ("data", "eval", "train")
ZEROSHOT_TRAIN_FIELDS = ("device", "precision", "seed")
EVAL_TRAIN_FIELDS = ("device", "precision")

DEFAULT_CACHE = Path(os.environ.get("CLIPOOD_CACHE", Path.home() / ".cache" / "clipood"))


def _fmt_default(v) -> str:
    if isinstance(v, list):
        return " ".join(map(str, v)) if v else "none"
    return "none" if v is None else str(v)


def add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str],
                     train_fields: Optional[Sequence[str]] = None, root=Config) -> None:
    groups = {}
    for sec, sec_cls, f in iter_fields(root):
        if sec not in sections:
            continue
        if sec == "train" and train_fields is not None and f.name not in train_fields:
            continue
        if sec not in groups:
            groups[sec] = parser.add_argument_group(f"{sec} options")
        g = groups[sec]
        tp, optional, is_list = field_type(sec_cls, f)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_text = f"{f.metadata['help']} (default: {_fmt_default(default)})".replace("%", "%%")
        name = "--" + flag_name(f)
        dest = f"{sec}.{f.name}"
        kw = dict(dest=dest, default=argparse.SUPPRESS, help=help_text)
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if tp is bool:
            g.add_argument(name, action=argparse.BooleanOptionalAction, **kw)
        elif is_list and f.name == "betas":
            g.add_argument(name, nargs=2, metavar=("B1", "B2"), **kw)
        elif is_list:
            g.add_argument(name, action="append", metavar="VALUE", **kw)
        else:
            g.add_argument(name, metavar=tp.__name__.upper() if not kw.get("choices") else None, **kw)


def config_from_args(args: argparse.Namespace, base: Optional[Config] = None) -> Config:
    """Defaults < --config YAML < flags given on the command line."""
    cfg = base or Config()
    if getattr(args, "config", None):
        cfg = load_yaml(args.config, cfg)
    overrides: dict = {}
    for key, value in vars(args).items():
        if "." in key:
            sec, name = key.split(".", 1)
            overrides.setdefault(sec, {})[name] = value
    return from_dict(overrides, cfg, source="command line")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   "(model, data, loss, averaging, optim, train, eval, run); flags override it.")
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
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint "
                   "(its saved config is used; other options are ignored).")
    add_config_flags(p, TRAIN_SECTIONS)

    p = sub.add_parser("zeroshot", help="evaluate the pre-trained model zero-shot (no training).",
                       description="Zero-shot accuracy of the pre-trained model on every split of the protocol.")
    _add_common(p)
    add_config_flags(p, ZEROSHOT_SECTIONS, ZEROSHOT_TRAIN_FIELDS)

    p = sub.add_parser("eval", help="evaluate a saved model (RUN_DIR/model) on a dataset.",
                       description="Evaluate an exported model folder (RUN_DIR/model, an open_clip local-dir "
                                   "folder) on --root with the given protocol.")
    _add_common(p)
    p.add_argument("--model", required=True, metavar="DIR", help="exported model folder, e.g. runs/NAME/model.")
    p.add_argument("--out", metavar="JSON", help="also write the results to this file.")
    add_config_flags(p, EVAL_SECTIONS, EVAL_TRAIN_FIELDS)

    p = sub.add_parser("pretrain", help="contrastive image-text pretraining (CLIP's loss) of a small backbone, offline.",
                       description="Pretrain an open_clip model with CLIP's contrastive loss on an image-caption "
                                   "table (open_clip's CSV convention), leaving out --exclude-domain rows; write an "
                                   "open_clip folder that --arch local-dir:RUN/model loads, or install it as a "
                                   "pretrained tag with --install-as. See docs/pretrained.md.")
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   "(model, data, optim, train, run); flags override it.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted pretraining run from its last "
                   "checkpoint (its saved config is used; other options are ignored).")
    add_config_flags(p, PRETRAIN_SECTIONS, root=PretrainConfig)

    p = sub.add_parser("models", help="list the open_clip architectures and their pretrained tags.")
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
    b.add_argument("--out", metavar="DIR", help=f"output folder (default: {DEFAULT_CACHE}/datasets/NAME).")
    b.add_argument("--per-class", type=int, default=None,
                   help="images per class and domain (default: 12 for shapes; 5 for emoji, the first ones plain "
                        "renderings of the class's emoji, the rest re-rendered poses).")
    e = b.add_argument_group("emoji options")
    e.add_argument("--sources", metavar="DIR", help="folder with the npm packages (data-sources or its node_modules; "
                   "default: $CLIPOOD_EMOJI_SOURCES, else ./data-sources, else the clipood checkout's data-sources).")
    e.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128).")
    e.add_argument("--max-classes", type=int, metavar="N", help="a slice: N classes spread over the sorted class list.")
    e.add_argument("--classes", metavar="NAMES", help="a slice: comma-separated class names (e.g. dog,bicycle).")
    e.add_argument("--pretrain-set", action="store_true", help="also render every emoji of every domain with a "
                   "caption into OUT-pretrain/ (captions.csv) for contrastive pretraining (slower).")
    e.add_argument("--force", action="store_true", help="rebuild even when OUT already holds this build.")
    e.add_argument("--no-progress", action="store_true", help="hide progress bars.")

    p = sub.add_parser("demo", help="the first-run job: zero-shot vs fine-tuning vs CLIPood on the bundled default.",
                       description="Build a slice of the bundled emoji benchmark (offline), then compare zero-shot, "
                                   "plain fine-tuning and CLIPood on the small CLIP pretrained offline "
                                   "(clipood-emoji-s): one emoji designer held out, classes split into base "
                                   "(trained) and new, several seeds. Prints the held-out table and writes the "
                                   "HTML report. Finished runs are skipped, so a stopped demo continues.")
    from .demo import DemoSettings
    d = DemoSettings()
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="parent folder of the demo's runs.")
    p.add_argument("--data-dir", metavar="DIR", help="where the benchmark slice is built "
                   f"(default: {DEFAULT_CACHE}/datasets/emoji-CLASSES).")
    p.add_argument("--classes", type=int, default=d.classes, help="benchmark classes used (a slice spread over "
                   "the sorted class list; half base, half new).")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per run.")
    p.add_argument("--seeds", type=int, default=d.seeds, help="seeds per method (mean ± std).")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate of the fine-tuning runs.")
    p.add_argument("--arch", default=d.arch, help="backbone architecture.")
    p.add_argument("--pretrained", default=d.pretrained, help="its pretrained weights (tag or file).")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report and plots.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")

    p = sub.add_parser("sweep", help="run methods x datasets x held-out domains x seeds; finished runs are skipped.",
                       description="Run a sweep (a YAML spec and/or flags; docs/experiments.md): every method on "
                                   "every dataset, held-out domain, variant and seed. Finished runs are skipped and "
                                   "interrupted ones resume, so rerunning continues a stopped sweep. Ends with the "
                                   "report (model selection stated).")
    from .sweep import add_arguments as add_sweep_arguments
    add_sweep_arguments(p)

    p = sub.add_parser("report", help="tables (paper layouts, published numbers beside), plots and an HTML page.",
                       description="Aggregate every finished run under RUNS_DIR (mean ± std over seeds) into the "
                                   "paper's table layouts with its published numbers beside, as markdown and CSV, "
                                   "plus plots and one HTML page (OUT/index.html).")
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run directories (any depth).")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUNS_DIR/report).")
    p.add_argument("--no-plots", action="store_true", help="tables only.")
    return parser


def _is_main_process() -> bool:
    """Rank 0 under torchrun (the others stay quiet), or a plain single process."""
    return os.environ.get("RANK", "0") == "0"


def print_results(results: dict) -> None:
    from .report import results_table
    if _is_main_process():
        print(results_table(results))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except ClipoodError as e:
        print(f"clipood: error: {e}", file=sys.stderr)
        return 130 if type(e).__name__ == "Interrupted" else 2
    except KeyboardInterrupt:
        print("clipood: interrupted", file=sys.stderr)
        return 130


def dispatch(args: argparse.Namespace) -> int:
    progress = not getattr(args, "no_progress", False)
    if args.command == "models":
        import open_clip

        from .model import list_architectures
        from .model.backbones import clipood_tags
        for name in list_architectures():
            tags = open_clip.list_pretrained_tags_by_model(name) + clipood_tags(name) if args.tags else []
            print(name + (f"  [{', '.join(tags)}]" if tags else ""))
        return 0
    if args.command == "datasets":
        from .data.registry import status_rows
        from .tables import markdown_table
        where = "folder under ROOT" if args.root is None else f"status under {args.root}"
        print(markdown_table(["dataset", "family", "domains", "classes", where], status_rows(args.root)))
        return 0
    if args.command == "data":
        out = Path(args.out) if args.out else DEFAULT_CACHE / "datasets" / args.name
        if args.name == "emoji":
            from .data.emoji import build_emoji
            classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
            report = build_emoji(out, sources=args.sources, size=args.size,
                                 images_per_class=args.per_class or 5, max_classes=args.max_classes,
                                 classes=classes, pretrain=args.pretrain_set, force=args.force, progress=progress)
            print(report.summary())
            return 0
        from .data.synthetic import make_shapes_dataset
        make_shapes_dataset(out, per_class=args.per_class or 12)
        print(out)
        return 0
    if args.command == "demo":
        from .demo import run_demo
        from .demo import DemoSettings
        settings = DemoSettings(arch=args.arch, pretrained=args.pretrained, classes=args.classes, steps=args.steps,
                                seeds=args.seeds, lr=args.lr)
        run_demo(Path(args.out), settings, data_dir=Path(args.data_dir) if args.data_dir else None,
                 progress=progress, report=not args.no_report)
        return 0
    if args.command == "sweep":
        from .sweep import main as sweep_main
        return sweep_main(args)
    if args.command == "report":
        from .reporting import build_report
        report = build_report(Path(args.runs_dir), Path(args.out) if args.out else None,
                              make_plots=not args.no_plots, progress=progress)
        print(report.markdown.split("## Figures")[0].split("## Published reference")[0].rstrip())
        print(f"\nreport: {report.html_path} (markdown, CSV tables and plots in {report.out_dir})")
        return 0

    from .training import runner
    from .runs import RunDir
    if args.command == "train":
        if args.resume:
            run, cfg = RunDir.open(args.resume)
            cfg = runner.resume_config(run)
            validate(cfg)
            run, results = runner.run_train(cfg, resume=run, progress=progress)
        else:
            cfg = validate(config_from_args(args))
            run, results = runner.run_train(cfg, progress=progress)
        print_results(results)
        if _is_main_process():
            print(f"run directory: {run.path}")
        return 0
    if args.command == "pretrain":
        from .pretraining.config import validate as validate_pretrain
        from .pretraining.report import summary
        from .pretraining.trainer import open_run, run_pretrain
        if args.resume:
            run, cfg = open_run(args.resume)
            run, results = run_pretrain(validate_pretrain(cfg), resume=run, progress=progress)
        else:
            cfg = validate_pretrain(config_from_args(args, PretrainConfig()))
            run, results = run_pretrain(cfg, progress=progress)
        print(summary(results, run.path))
        return 0
    if args.command == "zeroshot":
        cfg = validate(config_from_args(args), training=False)
        run, results = runner.run_zeroshot(cfg, progress=progress)
        print_results(results)
        if _is_main_process():
            print(f"run directory: {run.path}")
        return 0
    if args.command == "eval":
        cfg = validate(config_from_args(args), training=False)
        results = runner.run_eval(cfg, Path(args.model), Path(args.out) if args.out else None, progress=progress)
        print_results(results)
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
