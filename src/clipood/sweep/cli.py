"""``clipood sweep``: flags over a spec file, plan, run, report."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from ..config import PROFILES
from ..console import warn
from ..errors import ClipoodError, ConfigError
from ..methods import METHODS
from .launchers import LAUNCHERS, SlurmOptions
from .plan import plan, plan_table
from .runner import run_sweep
from .spec import SPEC_KEYS, SweepSpec, option_key, read_spec_file, spec_from_dict

__all__ = ["add_arguments", "main", "slurm_options", "spec_from_args"]


def add_arguments(p) -> None:
    """Flags of ``clipood sweep`` (each overrides the same key of the spec file)."""
    p.add_argument("spec", nargs="?", metavar="SPEC.yaml", help="sweep spec (see docs/experiments.md); "
                   "flags below override its keys.")
    p.add_argument("--method", action="append", metavar="NAME", help="a method to run (repeat); known: "
                   + ", ".join(METHODS))
    p.add_argument("--dataset", action="append", metavar="[NAME=]ROOT", help="a dataset folder to run on (repeat).")
    p.add_argument("--holdout", action="append", metavar="DOMAIN",
                   help="held-out domain, one run each (repeat; 'a+b' holds out both in one run); 'all' (every "
                        "domain in turn, the default) or 'none'.")
    p.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1.")
    p.add_argument("--seed", action="append", type=int, metavar="S", help="one seed (repeat).")
    p.add_argument("--base-to-new", action=argparse.BooleanOptionalAction, default=None,
                   help="split classes into base (trained) and new (CoOp protocol).")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="a config option for every run, e.g. --set train.steps=100 or --set lr=1e-5 (repeat).")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2", default=[],
                   help="variants of an option, e.g. --grid lambda=0.1,0.3 (repeat: the product).")
    p.add_argument("--profile", choices=tuple(PROFILES), help="option values under the overrides: 'clipood' "
                   "(the defaults) or 'official' (every choice as the paper's official code; docs/method.md) "
                   "(spec: profile).")
    p.add_argument("--out", metavar="DIR", help="parent folder of the sweep's runs (spec: output_dir).")
    p.add_argument("--name", metavar="NAME", help="the sweep's name (spec: name).")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs at a time, each in its own process (1: in this process, one after another); on a "
                        "machine with GPUs each job gets its own (CUDA_VISIBLE_DEVICES), round-robin when there are "
                        "more jobs than GPUs.")
    p.add_argument("--report-to", metavar="LIST", help="tensorboard, wandb or tensorboard,wandb for every run "
                   "(docs/configuration.md: --report-to; spec: overrides.run.report_to).")
    p.add_argument("--launcher", choices=LAUNCHERS, default="local", help="local: this machine (--jobs); slurm: "
                   "each run a task of a Slurm job array via submitit, waited for; submitit-local: the same "
                   "submission through submitit's local executor (to check a cluster sweep here).")
    s_ = p.add_argument_group("Slurm options (--launcher slurm / submitit-local)")
    d = SlurmOptions()
    s_.add_argument("--slurm-partition", metavar="NAME", help="partition (default: the cluster's).")
    s_.add_argument("--slurm-time", type=int, default=d.time_min, metavar="MIN", help="time limit per run, minutes "
                    "(a run stopped by it checkpoints on SIGTERM; rerun the sweep to continue).")
    s_.add_argument("--slurm-gpus-per-job", type=int, default=d.gpus_per_job, metavar="N", help="GPUs per run.")
    s_.add_argument("--slurm-cpus-per-task", type=int, default=d.cpus_per_task, metavar="N", help="CPUs per run.")
    s_.add_argument("--slurm-mem-gb", type=int, metavar="GB", help="memory per run (default: the cluster's).")
    s_.add_argument("--slurm-array-parallelism", type=int, default=d.array_parallelism, metavar="N",
                    help="runs of the array at a time.")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status; run nothing.")
    p.add_argument("--no-report", action="store_true", help="do not write the report when the sweep ends.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def spec_from_args(args) -> SweepSpec:
    data: dict = {}
    if args.spec:
        path = Path(args.spec)
        data = read_spec_file(path)
        if not isinstance(data, dict):
            raise ConfigError(f"sweep: {path} must hold a mapping with keys {', '.join(SPEC_KEYS)}")
    if args.method:
        data["methods"] = args.method
    if args.dataset:
        entries = []
        for d in args.dataset:
            name, sep, root = d.partition("=")
            entries.append({"name": name, "root": root} if sep else d)
        data["datasets"] = entries
    if args.holdout:  # 'a+b' holds out a and b in one run
        data["holdout"] = args.holdout[0] if len(args.holdout) == 1 and args.holdout[0] in ("all", "none") \
            else [h.split("+") if "+" in h else h for h in args.holdout]
    if args.seed:
        data["seeds"] = args.seed
    elif args.seeds is not None:
        data["seeds"] = args.seeds
    if args.base_to_new is not None:
        data["base_to_new"] = args.base_to_new
    if args.out:
        data["output_dir"] = args.out
    if args.profile is not None:
        data["profile"] = args.profile
    if args.name:
        data["name"] = args.name
    overrides = copy.deepcopy(data.get("overrides") or {})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        sec, name = option_key(key).split(".", 1)
        overrides.setdefault(sec, {})[name] = _parse_value(value)
    if getattr(args, "report_to", None):
        overrides.setdefault("run", {})["report_to"] = args.report_to
    if overrides:
        data["overrides"] = overrides
    grid = dict(data.get("grid") or {})
    for item in args.grid:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid: expected KEY=V1,V2,..., got {item!r}")
        grid[key] = [_parse_value(v) for v in values.split(",")]
    if grid:
        data["grid"] = grid
    return spec_from_dict(data, args.spec or "command line")


def slurm_options(args) -> SlurmOptions:
    """The --slurm-* flags; with --launcher local any of them given is said not to apply."""
    opts = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time, gpus_per_job=args.slurm_gpus_per_job,
                        cpus_per_task=args.slurm_cpus_per_task, mem_gb=args.slurm_mem_gb,
                        array_parallelism=args.slurm_array_parallelism)
    if args.launcher == "local":
        given = [f.replace("_", "-") for f in ("slurm_partition", "slurm_mem_gb") if getattr(args, f) is not None]
        given += [f"slurm-{n}" for n, v, dv in (("time", opts.time_min, SlurmOptions.time_min),
                                               ("gpus-per-job", opts.gpus_per_job, SlurmOptions.gpus_per_job),
                                               ("cpus-per-task", opts.cpus_per_task, SlurmOptions.cpus_per_task),
                                               ("array-parallelism", opts.array_parallelism,
                                                SlurmOptions.array_parallelism)) if v != dv]
        if given:
            warn(f"--{', --'.join(given)}: Slurm options do not apply with --launcher local; ignored")
    elif args.jobs != 1:
        warn(f"--jobs {args.jobs}: does not apply with --launcher {args.launcher} (--slurm-array-parallelism "
             f"sets how many run at a time); ignored")
    return opts


def main(args) -> int:
    """``clipood sweep``: plan, run (skipping finished runs), then report."""
    spec = spec_from_args(args)
    slurm = slurm_options(args)  # what does not apply is said, in a dry run too
    runs = plan(spec)
    if args.dry_run:
        print(plan_table(runs))
        return 0
    progress = not args.no_progress
    counts = {s: sum(r.status() == s for r in runs) for s in ("finished", "unfinished", "new")}
    print(f"sweep {spec.name!r}: {len(runs)} runs in {spec.output_dir} ({counts['finished']} finished and skipped, "
          f"{counts['unfinished']} to resume, {counts['new']} new)", file=sys.stderr)
    outcome = run_sweep(spec, jobs=args.jobs, progress=progress, runs=runs, launcher=args.launcher,
                        slurm=slurm)
    if not args.no_report:
        from ..reporting import build_report
        report = build_report(Path(spec.output_dir), progress=progress)
        print(report.summary_markdown)
        print(f"\nreport: {report.html_path} (tables, CSV and plots in {report.out_dir})")
    if outcome.failed:
        lines = "; ".join(f"{k}: {v}" for k, v in list(outcome.failed.items())[:3])
        raise ClipoodError(f"sweep: {len(outcome.failed)} of {len(runs)} runs failed ({lines}); fix and rerun "
                           f"the sweep to retry them")
    return 0
