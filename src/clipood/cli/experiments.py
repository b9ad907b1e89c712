"""``clipood sweep`` (``sweep.cli`` brings its flags and run) and ``clipood report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .command import Command, progress

__all__ = ["COMMANDS"]


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from ..sweep import add_arguments
    add_arguments(p)


def _sweep(args: argparse.Namespace) -> int:
    from ..sweep import main
    return main(args)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run directories (any depth).")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUNS_DIR/report).")
    p.add_argument("--no-plots", action="store_true", help="tables only (no plots/, no figures on the page).")
    p.add_argument("--error", choices=("std", "sem"), default="std",
                   help="what ± shows in every table: the sample standard deviation over seeds (std, default, as "
                        "the paper) or the standard error of the mean, std/sqrt(n) (sem, as DomainBed); tables "
                        "say which.")


def _report(args: argparse.Namespace) -> int:
    from ..reporting import build_report
    report = build_report(Path(args.runs_dir), Path(args.out) if args.out else None, make_plots=not args.no_plots,
                          progress=progress(args), error=args.error)
    print(report.markdown.split("## Figures")[0].split("## Published reference")[0].rstrip())
    print(f"\nreport: {report.html_path} (report.md, report.tex, CSV tables and plots in {report.out_dir})")
    return 0


COMMANDS = [
    Command("sweep", "run methods x datasets x held-out domains x seeds; finished runs are skipped.",
            "Run a sweep (a YAML spec and/or flags; docs/experiments.md): every method on every dataset, held-out "
            "domain, variant and seed. Finished runs are skipped and interrupted ones resume, so rerunning continues a "
            "stopped sweep. Ends with the report (model selection stated).", _sweep_arguments, _sweep),
    Command("report", "tables (paper layouts, published numbers beside), plots and an HTML page.",
            "Aggregate every finished run under RUNS_DIR (mean ± std over seeds) into the paper's table layouts with "
            "its published numbers beside, under training-domain validation, leave-one-domain-out and oracle model "
            "selection (docs/experiments.md): OUT/index.html (one page: settings, tables, plots), report.md, "
            "report.tex (booktabs LaTeX), tables/*.csv, runs.csv and plots/*.png.", _report_arguments, _report),
]
