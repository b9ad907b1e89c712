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
                     train_fields: Optional[Sequence[str]] = None) -> None:
    groups = {}
    for sec, sec_cls, f in iter_fields():
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

    p = sub.add_parser("models", help="list the open_clip architectures and their pretrained tags.")
    p.add_argument("--tags", action="store_true", help="also list each architecture's pretrained tags.")

    p = sub.add_parser("data", help="build a bundled dataset.", description="Build a bundled dataset.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    b = dsub.add_parser("build", help="build a bundled dataset into a folder (DomainBed layout).")
    b.add_argument("name", choices=("shapes",), help="shapes: 8 shapes x 4 drawing styles, drawn locally.")
    b.add_argument("--out", metavar="DIR", help=f"output folder (default: {DEFAULT_CACHE}/datasets/NAME).")
    b.add_argument("--per-class", type=int, default=12, help="images per class and domain (shapes).")

    p = sub.add_parser("demo", help="the first-run job: zero-shot vs fine-tuning vs CLIPood on the bundled default.",
                       description="Build the bundled dataset, then compare zero-shot, plain fine-tuning and "
                                   "CLIPood with a held-out domain, and print the table.")
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="parent folder of the demo's runs.")
    p.add_argument("--steps", type=int, default=60, help="training steps per method.")
    p.add_argument("--seeds", type=int, default=1, help="seeds per method (mean ± std when > 1).")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")
    return parser


def print_results(results: dict) -> None:
    from .report import results_table
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
        for name in list_architectures():
            tags = open_clip.list_pretrained_tags_by_model(name) if args.tags else []
            print(name + (f"  [{', '.join(tags)}]" if tags else ""))
        return 0
    if args.command == "data":
        from .data.synthetic import make_shapes_dataset
        out = Path(args.out) if args.out else DEFAULT_CACHE / "datasets" / args.name
        make_shapes_dataset(out, per_class=args.per_class)
        print(out)
        return 0
    if args.command == "demo":
        from .demo import run_demo
        run_demo(Path(args.out), steps=args.steps, seeds=args.seeds, progress=progress)
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
        print(f"run directory: {run.path}")
        return 0
    if args.command == "zeroshot":
        cfg = validate(config_from_args(args), training=False)
        run, results = runner.run_zeroshot(cfg, progress=progress)
        print_results(results)
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
