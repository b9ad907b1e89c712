"""Sweeps: methods x datasets x held-out domains x hyper-parameter variants x seeds.

A sweep is a YAML spec (or flags of ``clipood sweep``) expanded into a deterministic list
of runs, each a normal run directory under ``output_dir`` named after what it is
(``<dataset>-<method>-<held-out>[-b2n][-<variant>]-seed<S>``). Rerunning the same sweep
skips finished runs (``results.json`` present) and resumes interrupted ones from their
last checkpoint, so a pre-empted sweep continues where it stopped. Runs execute in this
process one after another, or ``--jobs N`` at a time, each in its own
``python -m clipood.cli`` process (logs in ``output_dir/.sweep/logs``).

Spec keys (all optional except methods and datasets)::

    name: table1-pacs
    output_dir: runs/table1
    methods: [zeroshot, erm-linear, finetune, clipood]      # see clipood.methods
    datasets:                                               # a root path, or a mapping
      - {name: PACS, root: data/PACS, overrides: {optim: {lr: 5.0e-6}}}
      - {name: PACS, dataset: pacs, root: data}             # a registered dataset (--dataset)
    holdout: all          # every domain in turn; [a, b]: each in turn; [[a, b]]: both at once; none
    seeds: [0, 1, 2]      # or a count: 3
    base_to_new: false
    overrides: {train: {steps: 5000}}                       # config sections, for every run
    method_overrides: {erm-linear: {optim: {lr: 1.0e-5}}}
    grid: {lambda: [0.1, 0.3], beta: [0.5, 1.0]}            # variants; option keys or flag names
    wise_ft_alphas: [0.0, 0.25, 0.5, 0.75, 1.0]

Model selection among variants (DomainBed's training-domain validation, or the oracle)
happens in the report (``clipood report``), which states which one each table uses.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from tqdm.auto import tqdm

from .config import (
    Config,
    execution_keys,
    flag_name,
    from_dict,
    irrelevant_keys,
    iter_fields,
    load_yaml,
    parse_yaml,
    save_yaml,
    to_dict,
    validate,
    with_absolute_paths,
)
from .errors import ClipoodError, ConfigError
from .io import write_json, write_text
from .methods import DEFAULT_WISE_ALPHAS, TRAIN, WISE_FT, ZEROSHOT, Method, get_method
from .rundir import RunDir

SIDECAR = "sweep.json"  # in each run directory: what the run is within its sweep (for reports)
STATE_DIR = ".sweep"
# Options that change how a run executes, not what it computes: a run may resume with other values.
EXECUTION_KEYS = execution_keys()
ZEROSHOT_SECTIONS = ("model", "data", "eval")  # the only sections that change a zero-shot evaluation


# ------------------------------------------------------------------------------ spec


@dataclass
class DatasetSpec:
    name: str
    root: Optional[str] = None
    holdout: Any = None  # None: the sweep's holdout
    overrides: dict = field(default_factory=dict)


@dataclass
class SweepSpec:
    methods: list[str]
    datasets: list[DatasetSpec]
    holdout: Any = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    base_to_new: bool = False
    overrides: dict = field(default_factory=dict)
    method_overrides: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    wise_ft_alphas: list[float] = field(default_factory=lambda: list(DEFAULT_WISE_ALPHAS))
    output_dir: str = "runs/sweep"
    name: str = "sweep"


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(SweepSpec))  # the keys a spec file may have
DATASET_KEYS = ("dataset",) + tuple(f.name for f in dataclasses.fields(DatasetSpec))  # and a dataset entry


def option_key(key: str) -> str:
    """'section.field' for an option given as 'section.field' or as its flag name ('lambda')."""
    known = {f"{sec}.{f.name}": (sec, f) for sec, _, f in iter_fields()}
    if key in known:
        return key
    by_flag = {flag_name(f): f"{sec}.{f.name}" for sec, _, f in iter_fields()}
    name = key.lstrip("-")
    for candidate in (name, name.replace("_", "-")):
        if candidate in by_flag:
            return by_flag[candidate]
    raise ConfigError(f"sweep: unknown option {key!r}; use 'section.field' (e.g. loss.margin_lambda) or a flag "
                      f"name (e.g. lambda); see docs/configuration.md")


def nested(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        sec, name = option_key(key).split(".", 1)
        out.setdefault(sec, {})[name] = value
    return out


def _dataset(entry: Any, where: str) -> DatasetSpec:
    if isinstance(entry, str):
        return DatasetSpec(name=Path(entry).name or entry, root=entry)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a dataset is a root path or a mapping with keys {', '.join(DATASET_KEYS)}")
    unknown = set(entry) - set(DATASET_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in a dataset entry "
                          f"(known: {', '.join(DATASET_KEYS)})")
    overrides = copy.deepcopy(entry.get("overrides") or {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: a dataset's 'overrides' must be a mapping of config sections")
    if entry.get("dataset"):
        overrides.setdefault("data", {})["dataset"] = entry["dataset"]
    root = entry.get("root")
    name = entry.get("name") or entry.get("dataset") or (Path(root).name if root else None)
    if not name:
        raise ConfigError(f"{where}: a dataset entry needs a 'name', 'dataset' or 'root'")
    return DatasetSpec(name=str(name), root=None if root is None else str(root), holdout=entry.get("holdout"),
                       overrides=overrides)


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: 'seeds' is a count or a list of integers")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: 'seeds: {value}' must be at least 1")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: 'seeds' lists a seed twice: {value}")
        return list(value)
    raise ConfigError(f"{where}: 'seeds' is a count or a list of integers, got {value!r}")


def spec_from_dict(data: dict, where: str = "sweep spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = set(data) - set(SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(SPEC_KEYS)})")
    methods = data.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list):
        datasets = [datasets]
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: 'grid' maps an option to a list of values, e.g. {{lambda: [0.1, 0.3]}}")
    grid = {option_key(k): (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    alphas = data.get("wise_ft_alphas", list(DEFAULT_WISE_ALPHAS))
    if not isinstance(alphas, list) or not alphas or not all(
            isinstance(a, (int, float)) and 0 <= a <= 1 for a in alphas):
        raise ConfigError(f"{where}: 'wise_ft_alphas' must be a list of numbers in [0, 1], got {alphas!r}")
    mo = data.get("method_overrides") or {}
    if not isinstance(mo, dict):
        raise ConfigError(f"{where}: 'method_overrides' maps a method name to config sections")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: 'overrides' must be a mapping of config sections")
    spec = SweepSpec(methods=[str(m) for m in methods], datasets=[_dataset(d, where) for d in datasets],
                     holdout=data.get("holdout", "all"), seeds=_seeds(data.get("seeds", [0]), where),
                     base_to_new=bool(data.get("base_to_new", False)), overrides=overrides,
                     method_overrides=mo, grid=grid, wise_ft_alphas=[float(a) for a in alphas],
                     output_dir=str(data.get("output_dir", "runs/sweep")), name=str(data.get("name", "sweep")))
    for m in list(spec.methods) + list(mo):
        get_method(m)
    return spec


def read_spec_file(path: str | Path) -> Any:
    """The parsed YAML of a spec file, or one ConfigError line naming the file."""
    return parse_yaml(path, flag="sweep")


def load_spec(path: str | Path) -> SweepSpec:
    return spec_from_dict(read_spec_file(path), str(path))


def check_spec(spec: SweepSpec) -> None:
    if not spec.methods:
        raise ConfigError("sweep: no methods; pass --method NAME or list 'methods:' in the spec")
    if not spec.datasets:
        raise ConfigError("sweep: no datasets; pass --dataset [NAME=]ROOT or list 'datasets:' in the spec")
    names = [d.name for d in spec.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep: two datasets are named the same ({names}); give each a distinct 'name'")


# ------------------------------------------------------------------------------ plan


@dataclass
class PlannedRun:
    name: str
    method: Method
    dataset: str
    holdout: tuple[str, ...]
    seed: int
    variant: dict[str, Any]  # 'section.field' -> value, the options that make this run a variant
    cfg: Config
    base: Optional[str] = None  # wise-ft: the run it interpolates
    alphas: tuple[float, ...] = ()

    @property
    def path(self) -> Path:
        return Path(self.cfg.run.output_dir) / self.name

    def status(self) -> str:
        if (self.path / "results.json").is_file():
            return "finished"
        if (self.path / "config.yaml").is_file():
            return "unfinished"
        return "new"

    def sidecar(self, sweep: str) -> dict:
        return {"sweep": sweep, "method": self.method.name, "dataset": self.dataset, "holdout": list(self.holdout),
                "seed": self.seed, "variant": self.variant, "base_to_new": self.cfg.data.base_to_new,
                "base_run": self.base}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", str(text)).strip("_") or "x"


def _short(key: str) -> str:
    sec, name = key.split(".", 1)
    for s, _, f in iter_fields():
        if s == sec and f.name == name:
            return flag_name(f)
    return name


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "_".join(map(_fmt_value, v))
    return str(v)


def run_name(dataset: str, method: str, holdout: tuple[str, ...], b2n: bool, variant: dict, seed: int) -> str:
    held = "+".join(holdout) if holdout else "noholdout"
    var = "".join(f"-{_short(k)}{_fmt_value(v)}" for k, v in sorted(variant.items()))
    return slug(f"{dataset}-{method}-{held}{'-b2n' if b2n else ''}{var}-seed{seed}")


def _get(cfg: Config, key: str) -> Any:
    sec, name = key.split(".", 1)
    return getattr(getattr(cfg, sec), name)


def _domains(cfg: Config) -> list[str]:
    """The dataset's domains (to expand 'holdout: all'), from the registry or by scanning the folder."""
    from .training.experiment import prepare_data
    probe = copy.deepcopy(cfg)
    probe.data.holdout_domains, probe.data.base_to_new = [], False
    index, _ = prepare_data(validate(probe, training=False), training=False)
    return list(index.domains)


def _holdouts(value: Any, cfg: Config, dataset: str) -> list[tuple[str, ...]]:
    if value is None or value == [] or (isinstance(value, str) and value.lower() == "none"):
        return [()]
    if isinstance(value, str) and value.lower() == "all":
        domains = _domains(cfg)
        if len(domains) < 2:
            raise ConfigError(f"sweep: dataset {dataset!r} has one domain ({domains[0]}); 'holdout: all' needs "
                              f"several; use 'holdout: none'")
        return [(d,) for d in domains]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"sweep: 'holdout' of {dataset!r} must be all, none, or a list of domains, got {value!r}")
    out = []
    for item in value:
        out.append(tuple(str(d) for d in item) if isinstance(item, list) else (str(item),))
    domains = _domains(cfg)
    for held in out:
        for d in held:
            if d not in domains:
                raise ConfigError(f"sweep: holdout '{d}' is not a domain of dataset {dataset!r}; domains: "
                                  f"{', '.join(domains)}")
    return out


def _with_method_deps(methods: list[str]) -> list[Method]:
    """Requested methods in order, with the runs they build on (WiSE-FT's fine-tuned run) before them."""
    order: list[Method] = []
    for name in methods:
        m = get_method(name)
        if m.base and m.base not in [o.name for o in order]:
            order.append(get_method(m.base))
        if m.name not in [o.name for o in order]:
            order.append(m)
    return order


def plan(spec: SweepSpec) -> list[PlannedRun]:
    """Every run of the sweep, in execution order (a WiSE-FT run after the run it reads)."""
    check_spec(spec)
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    grid_keys = sorted(spec.grid)
    combos = [dict(zip(grid_keys, vals)) for vals in itertools.product(*(spec.grid[k] for k in grid_keys))]
    methods = _with_method_deps(spec.methods)
    for ds in spec.datasets:
        base = from_dict(copy.deepcopy(spec.overrides), Config(), source="sweep overrides")
        base.data.base_to_new = spec.base_to_new
        if ds.root is not None:
            base.data.root = ds.root
        base = from_dict(copy.deepcopy(ds.overrides), base, source=f"sweep dataset {ds.name}")
        holdouts = _holdouts(spec.holdout if ds.holdout is None else ds.holdout, base, ds.name)
        for held in holdouts:
            for method in methods:
                cfg_m = method.configure(base)
                cfg_m = from_dict(copy.deepcopy(spec.method_overrides.get(method.name, {})), cfg_m,
                                  source=f"sweep method_overrides.{method.name}")
                variants: list[tuple[dict, Config]] = []
                for combo in combos:
                    cfg_v = from_dict(nested(combo), copy.deepcopy(cfg_m), source="sweep grid")
                    if method.kind == ZEROSHOT:
                        keep = {k: v for k, v in combo.items() if k.split(".")[0] in ZEROSHOT_SECTIONS}
                    else:
                        ignored = irrelevant_keys(cfg_v)
                        keep = {k: v for k, v in combo.items() if k not in ignored}
                    cfg_v = from_dict(nested(keep), copy.deepcopy(cfg_m), source="sweep grid")
                    if keep not in [v for v, _ in variants]:
                        variants.append((keep, cfg_v))
                seeds = spec.seeds[:1] if method.kind == ZEROSHOT else spec.seeds
                for variant, cfg_v in variants:
                    for seed in seeds:
                        name = run_name(ds.name, method.name, held, cfg_v.data.base_to_new, variant, seed)
                        if name in seen:
                            continue
                        seen.add(name)
                        cfg = copy.deepcopy(cfg_v)
                        cfg.data.holdout_domains = list(held)
                        cfg.train.seed = seed
                        cfg.run.output_dir, cfg.run.name = spec.output_dir, name
                        validate(cfg, training=method.kind != ZEROSHOT)
                        base_run = None
                        if method.kind == WISE_FT:
                            base_run = run_name(ds.name, method.base, held, cfg.data.base_to_new, variant, seed)
                        runs.append(PlannedRun(name, method, ds.name, held, seed, variant, cfg, base_run,
                                               tuple(spec.wise_ft_alphas) if method.kind == WISE_FT else ()))
    return runs


# ------------------------------------------------------------------------------ execution


@dataclass
class SweepOutcome:
    planned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this sweep started
    executed: list[str] = field(default_factory=list)  # run (new or resumed) and finished now
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(planned: Config, saved: Config) -> list[str]:
    """Options (other than execution ones) whose saved value differs from the planned one."""
    a, b = _flat(to_dict(with_absolute_paths(planned))), _flat(to_dict(with_absolute_paths(saved)))  # as saved
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in EXECUTION_KEYS:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, float) and isinstance(vb, (int, float)) and math.isclose(va, vb, rel_tol=1e-12):
            continue
        if va != vb:
            diffs.append(f"{key} (run: {vb!r}, sweep: {va!r})")
    return diffs


def _check_same(run: PlannedRun) -> None:
    saved = load_yaml(run.path / "config.yaml")
    if run.method.kind == WISE_FT:
        return  # its config is the fine-tuned run's, checked there
    diffs = config_differences(run.cfg, saved)
    if diffs:
        raise ConfigError(f"sweep: {run.path} was made with other options ({'; '.join(diffs[:3])}); delete it or "
                          f"use another output_dir")


def _prepare_unfinished(run: PlannedRun) -> bool:
    """Before resuming: True when a checkpoint exists; otherwise the run restarts in place."""
    from .rundir import RunDir
    from .training import checkpoint as ckpt
    has_ckpt = bool(ckpt.list_checkpoints(run.path))
    if not has_ckpt:
        RunDir(run.path).truncate_metrics(0)  # events of steps that will run again
    return has_ckpt


def _write_sidecar(run: PlannedRun, sweep: str) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.path / SIDECAR, run.sidecar(sweep))


def execute_in_process(run: PlannedRun, *, progress: bool) -> dict:
    """One run in this process: zero-shot, training (new or resumed) or WiSE-FT."""
    from . import commands
    from .rundir import RunDir
    cfg = copy.deepcopy(run.cfg)
    if run.method.kind == ZEROSHOT:
        return commands.zeroshot(cfg, progress=progress)[1]
    if run.method.kind == WISE_FT:
        from .commands.wise_ft import run_wise_ft
        if (run.path / "metrics.jsonl").exists():
            (run.path / "metrics.jsonl").unlink()
        return run_wise_ft(run.path.parent / run.base, cfg, run.alphas, progress=progress)[1]
    resume = None
    if run.status() == "unfinished":
        _prepare_unfinished(run)
        resume = RunDir(run.path)
    return commands.train(cfg, resume=resume, progress=progress)[1]


def subprocess_command(run: PlannedRun, state_dir: Path) -> list[str]:
    """The ``python -m clipood.cli`` command line that does one run in its own process."""
    base = [sys.executable, "-m", "clipood.cli"]
    if run.method.kind == TRAIN and run.status() == "unfinished":
        _prepare_unfinished(run)
        return base + ["train", "--resume", str(run.path), "--no-progress"]
    cfg_file = state_dir / "configs" / f"{run.name}.yaml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    save_yaml(run.cfg, cfg_file)
    return base + ["train" if run.method.kind == TRAIN else "zeroshot", "--config", str(cfg_file), "--no-progress"]


class _Children:
    """Subprocesses of a parallel sweep; SIGTERM/SIGINT are passed on so each checkpoints and stops."""

    def __init__(self):
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def stop(self, signum=signal.SIGTERM) -> None:
        self.stopping = True
        with self.lock:
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(signum)


def _run_child(run: PlannedRun, state_dir: Path, children: _Children, threads: int) -> Optional[str]:
    """Run one subprocess; None on success, else the reason (the log's last line)."""
    if children.stopping:
        return "not started: the sweep is stopping"
    log_path = state_dir / "logs" / f"{run.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads))  # jobs share the cores instead of oversubscribing them
    cmd = subprocess_command(run, state_dir)
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        with children.lock:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # our handler, not the terminal, signals it
            children.procs.add(proc)
        code = proc.wait()
        with children.lock:
            children.procs.discard(proc)
    if code == 0 and run.status() == "finished":
        return None
    lines = [ln for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return f"exit {code}: {lines[-1] if lines else 'no output'} (log: {log_path})"


def run_sweep(spec: SweepSpec, *, jobs: int = 1, progress: bool = True,
              on_run_end: Optional[Callable[[PlannedRun, SweepOutcome], None]] = None,
              runs: Optional[list[PlannedRun]] = None) -> SweepOutcome:
    """Run every unfinished run of the sweep; finished ones are skipped, interrupted ones resume.

    ``on_run_end`` is called after each run this call finishes (tests use it to interrupt).
    Errors of single runs (a bad image, a diverging loss) are collected and the sweep goes on;
    SIGINT/SIGTERM stop it (the running run checkpoints) with a message saying how to continue.
    """
    from .errors import Interrupted
    if jobs < 1:
        raise ConfigError(f"--jobs: {jobs} is out of range; allowed: an integer >= 1")
    runs = plan(spec) if runs is None else runs
    out_dir = Path(spec.output_dir)
    state_dir = out_dir / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    write_text(state_dir / "spec.yaml", yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
    outcome = SweepOutcome(planned=[r.name for r in runs])
    todo = []
    for r in runs:
        status = r.status()
        if status == "finished":
            _check_same(r)
            RunDir(r.path).tidy()  # what a kill between results.json and checkpoint removal left
            outcome.skipped.append(r.name)
        else:
            if status == "unfinished":
                _check_same(r)
                if r.method.kind == TRAIN:
                    outcome.resumed.append(r.name)
            todo.append(r)
    bar = tqdm(total=len(runs), initial=len(outcome.skipped), desc="sweep", unit="run", disable=not progress,
               dynamic_ncols=True)
    stop_hint = f"rerun the same sweep to continue ({len(runs)} runs; finished ones are skipped)"

    def finished(r: PlannedRun) -> None:
        outcome.executed.append(r.name)
        bar.update(1)
        if on_run_end is not None:
            on_run_end(r, outcome)

    def blocked(r: PlannedRun) -> Optional[str]:
        if r.base and r.base in outcome.failed:
            return f"not run: its base run {r.base} failed"
        return None

    try:
        if jobs == 1:
            for r in todo:
                if (why := blocked(r)) is not None:
                    outcome.failed[r.name] = why
                    continue
                bar.set_postfix_str(r.name)
                _write_sidecar(r, spec.name)
                try:
                    execute_in_process(r, progress=progress)
                except Interrupted as e:
                    raise Interrupted(f"sweep stopped during {r.name} ({e}); {stop_hint}") from None
                except KeyboardInterrupt:
                    raise Interrupted(f"sweep interrupted during {r.name}; {stop_hint}") from None
                except ClipoodError as e:
                    outcome.failed[r.name] = str(e)
                    tqdm.write(f"clipood sweep: {r.name} failed: {e}", file=sys.stderr)
                    continue
                finished(r)
        else:
            _run_parallel(spec, todo, jobs, state_dir, outcome, finished, blocked, stop_hint, progress)
    finally:
        bar.close()
    return outcome


def _run_parallel(spec, todo, jobs, state_dir, outcome, finished, blocked, stop_hint, progress) -> None:
    from .errors import Interrupted
    from .training.signals import handling_stop_signals
    children = _Children()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    separate = [r for r in todo if r.method.kind != WISE_FT]
    with handling_stop_signals(children.stop):
        for r in separate:
            _write_sidecar(r, spec.name)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_child, r, state_dir, children, threads): r for r in separate}
            for fut in as_completed(futures):
                r = futures[fut]
                err = fut.result()
                if err is None:
                    finished(r)
                elif not children.stopping:
                    outcome.failed[r.name] = err
                    tqdm.write(f"clipood sweep: {r.name} failed: {err}", file=sys.stderr)
        if children.stopping:
            raise Interrupted(f"sweep stopped by a signal; running runs checkpointed; {stop_hint}")
    for r in todo:  # post-hoc steps, in this process, once their base runs are done
        if r.method.kind != WISE_FT:
            continue
        if (why := blocked(r)) is not None:
            outcome.failed[r.name] = why
            continue
        _write_sidecar(r, spec.name)
        try:
            execute_in_process(r, progress=progress)
        except ClipoodError as e:
            outcome.failed[r.name] = str(e)
            continue
        finished(r)


def spec_to_dict(spec: SweepSpec) -> dict:
    d = dataclasses.asdict(spec)
    d["datasets"] = [{k: v for k, v in ds.items() if v not in (None, {})} for ds in d["datasets"]]
    return d


def plan_table(runs: list[PlannedRun]) -> str:
    from .reporting.text import markdown_table
    return markdown_table(["run", "method", "dataset", "held out", "seed", "status"],
                          [[r.name, r.method.name, r.dataset, "+".join(r.holdout) or "-", r.seed, r.status()]
                           for r in runs])


# ------------------------------------------------------------------------------ command line


def add_arguments(p) -> None:
    """Flags of ``clipood sweep`` (each overrides the same key of the spec file)."""
    p.add_argument("spec", nargs="?", metavar="SPEC.yaml", help="sweep spec (see docs/experiments.md); "
                   "flags below override its keys.")
    p.add_argument("--method", action="append", metavar="NAME", help="a method to run (repeat); known: "
                   + ", ".join(__import__("clipood.methods", fromlist=["METHODS"]).METHODS))
    p.add_argument("--dataset", action="append", metavar="[NAME=]ROOT", help="a dataset folder to run on (repeat).")
    p.add_argument("--holdout", action="append", metavar="DOMAIN",
                   help="held-out domain, one run each (repeat; 'a+b' holds out both in one run); 'all' (every "
                        "domain in turn, the default) or 'none'.")
    p.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1.")
    p.add_argument("--seed", action="append", type=int, metavar="S", help="one seed (repeat).")
    p.add_argument("--base-to-new", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="split classes into base (trained) and new (CoOp protocol).")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="a config option for every run, e.g. --set train.steps=100 or --set lr=1e-5 (repeat).")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2", default=[],
                   help="variants of an option, e.g. --grid lambda=0.1,0.3 (repeat: the product).")
    p.add_argument("--out", metavar="DIR", help="parent folder of the sweep's runs (spec: output_dir).")
    p.add_argument("--name", metavar="NAME", help="the sweep's name (spec: name).")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs at a time, each in its own process (1: in this process, one after another).")
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
    if args.name:
        data["name"] = args.name
    overrides = copy.deepcopy(data.get("overrides") or {})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        sec, name = option_key(key).split(".", 1)
        overrides.setdefault(sec, {})[name] = _parse_value(value)
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


def main(args) -> int:
    """``clipood sweep``: plan, run (skipping finished runs), then report."""
    spec = spec_from_args(args)
    runs = plan(spec)
    if args.dry_run:
        print(plan_table(runs))
        return 0
    progress = not args.no_progress
    counts = {s: sum(r.status() == s for r in runs) for s in ("finished", "unfinished", "new")}
    print(f"sweep {spec.name!r}: {len(runs)} runs in {spec.output_dir} ({counts['finished']} finished and skipped, "
          f"{counts['unfinished']} to resume, {counts['new']} new)", file=sys.stderr)
    outcome = run_sweep(spec, jobs=args.jobs, progress=progress, runs=runs)
    if not args.no_report:
        from .reporting import build_report
        report = build_report(Path(spec.output_dir), progress=progress)
        print(report.summary_markdown)
        print(f"\nreport: {report.html_path} (tables, CSV and plots in {report.out_dir})")
    if outcome.failed:
        lines = "; ".join(f"{k}: {v}" for k, v in list(outcome.failed.items())[:3])
        raise ClipoodError(f"sweep: {len(outcome.failed)} of {len(runs)} runs failed ({lines}); fix and rerun "
                           f"the sweep to retry them")
    return 0


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(spec_to_dict(load_spec(sys.argv[1])), indent=2))
