"""The ``clipood`` command.

Flags are generated from the config dataclasses (``config``), so every option has one default
and one help text, shown by ``--help``. Precedence: defaults < --config YAML < flags. User
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
from ..cache import cache_root
from ..config import validate
from ..errors import ClipoodError, Interrupted
from ..pretraining.config import PretrainConfig
from .flags import config_from_args, resume_overrides, warn_inapplicable
from .parser import build_parser
from .tools import TOOL_COMMANDS, dispatch_tool

__all__ = ["build_parser", "config_from_args", "dispatch", "main"]


def _is_main_process() -> bool:
    """Rank 0 under torchrun (the others stay quiet), or a plain single process."""
    return os.environ.get("RANK", "0") == "0"


def report_run(run, results: dict) -> int:
    """The results table and where the run is (rank 0 only under torchrun); the command's exit status."""
    print_results(results)
    if _is_main_process():
        print(f"run directory: {run.path}")
    return 0


def print_results(results: dict) -> None:
    from ..reporting.text import results_table
    if _is_main_process():
        print(results_table(results))


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
    progress = not getattr(args, "no_progress", False)
    if args.command in TOOL_COMMANDS:
        return dispatch_tool(args)
    if args.command == "models":
        import open_clip

        from ..model import list_architectures
        from ..model.weights import clipood_tags
        for name in list_architectures():
            tags = open_clip.list_pretrained_tags_by_model(name) + clipood_tags(name) if args.tags else []
            print(name + (f"  [{', '.join(tags)}]" if tags else ""))
        return 0
    if args.command == "datasets":
        from ..data.datasets import status_rows
        from ..reporting.text import markdown_table
        where = "folder under ROOT" if args.root is None else f"status under {args.root}"
        print(markdown_table(["dataset", "family", "domains", "classes", where], status_rows(args.root)))
        return 0
    if args.command == "data":
        out = Path(args.out) if args.out else cache_root() / "datasets" / args.name
        if args.name == "emoji":
            from ..data.emoji import build_emoji
            classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
            domains = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else None
            report = build_emoji(out, sources=args.sources, **({"size": args.size} if args.size is not None else {}),
                                 **({"images_per_class": args.per_class} if args.per_class is not None else {}),
                                 max_classes=args.max_classes,
                                 classes=classes, domains=domains, pretrain=args.pretrain_set, force=args.force,
                                 progress=progress)
            print(report.summary())
            return 0
        from ..console import warn
        from ..data.synthetic import SHAPES_PER_CLASS, SHAPES_SIZE, check_build_options, make_shapes_dataset
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
    if args.command == "demo":
        from ..demo import DemoSettings, run_demo
        anchors = tuple(args.align_domain or DemoSettings().anchor_domains)
        settings = DemoSettings(arch=args.arch, pretrained=args.pretrained, classes=args.classes, steps=args.steps,
                                seeds=args.seeds, lr=args.lr, trainable=args.trainable, holdout=args.holdout_domain,
                                regime=args.regime, anchor_domains=anchors)
        run_demo(Path(args.out), settings, data_dir=Path(args.data_dir) if args.data_dir else None,
                 progress=progress, report=not args.no_report, align_only=args.align_only)
        return 0
    if args.command == "sweep":
        from ..sweep import main as sweep_main
        return sweep_main(args)
    if args.command == "report":
        from ..reporting import build_report
        report = build_report(Path(args.runs_dir), Path(args.out) if args.out else None,
                              make_plots=not args.no_plots, progress=progress, error=args.error)
        print(report.markdown.split("## Figures")[0].split("## Published reference")[0].rstrip())
        print(f"\nreport: {report.html_path} (report.md, report.tex, CSV tables and plots in {report.out_dir})")
        return 0

    from .. import commands
    from ..rundir import RunDir
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
        return report_run(run, results)
    if args.command == "pretrain":
        from ..pretraining.config import validate as validate_pretrain
        from ..pretraining.summary import summary
        from ..pretraining.trainer import open_run, run_pretrain
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
        run, results = commands.zeroshot(cfg, progress=progress, save_model=args.save_model)
        return report_run(run, results)
    if args.command == "eval":
        cfg = validate(config_from_args(args)[0], training=False)
        out = Path(args.out) if args.out else None
        if out is not None and out.is_dir():
            raise ClipoodError(f"--out: {out} is a folder; give the JSON file to write, e.g. {out / 'eval.json'}")
        results = commands.evaluate(cfg, Path(args.model), out, progress=progress)
        print_results(results)
        return 0
    raise AssertionError(args.command)


