"""Running a sweep's runs: finished ones skipped, interrupted ones resumed, one at a time in this process
or ``--jobs N`` at a time in their own processes (logs in ``output_dir/.sweep/logs``)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

from ..config import save_yaml
from ..console import progress_bar, write
from ..errors import ClipoodError, ConfigError, Interrupted
from ..io import write_json, write_text
from ..methods import TRAIN, WISE_FT, ZEROSHOT
from ..rundir import RunDir, list_checkpoints
from .launchers import GpuSlots, SlurmOptions, check_launcher, submit, visible_gpus
from .plan import SIDECAR, PlannedRun, check_same, plan
from .spec import SweepSpec, spec_to_dict

__all__ = ["STATE_DIR", "SweepOutcome", "execute_in_process", "run_sweep", "subprocess_command"]

STATE_DIR = ".sweep"


@dataclass
class SweepOutcome:
    planned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this sweep started
    executed: list[str] = field(default_factory=list)  # run (new or resumed) and finished now
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)



def _prepare_unfinished(run: PlannedRun) -> bool:
    """Before resuming: True when a checkpoint exists; otherwise the run restarts in place."""
    has_ckpt = bool(list_checkpoints(run.path))
    if not has_ckpt:
        RunDir(run.path).truncate_metrics(0)  # events of steps that will run again
    return has_ckpt


def _write_sidecar(run: PlannedRun, sweep: str) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.path / SIDECAR, run.sidecar(sweep))


def execute_in_process(run: PlannedRun, *, progress: bool) -> dict:
    """One run in this process: zero-shot, training (new or resumed) or WiSE-FT."""
    from .. import commands
    cfg = copy.deepcopy(run.cfg)
    if run.method.kind == ZEROSHOT:
        return commands.zeroshot(cfg, progress=progress)[1]
    if run.method.kind == WISE_FT:
        from ..commands.wise_ft import run_wise_ft
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


def log_path(run: PlannedRun, state_dir: Path) -> Path:
    return state_dir / "logs" / f"{run.name}.log"


def _why_failed(run: PlannedRun, state_dir: Path, code) -> str:
    log = log_path(run, state_dir)
    lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()] \
        if log.is_file() else []
    return f"{code}: {lines[-1] if lines else 'no output'} (log: {log})"


def _run_child(run: PlannedRun, state_dir: Path, children: _Children, threads: int,
               slots: Optional[GpuSlots] = None) -> Optional[str]:
    """Run one subprocess (on its own GPU when there are GPUs); None on success, else the reason."""
    if children.stopping:
        return "not started: the sweep is stopping"
    slot, gpu_env = slots.take() if slots is not None else (None, {})
    try:
        return _run_child_on(run, state_dir, children, threads, gpu_env)
    finally:
        if slot is not None:
            slots.give_back(slot)


def _run_child_on(run: PlannedRun, state_dir: Path, children: _Children, threads: int, gpu_env: dict
                  ) -> Optional[str]:
    path = log_path(run, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **gpu_env}
    env.setdefault("OMP_NUM_THREADS", str(threads))  # jobs share the cores instead of oversubscribing them
    cmd = subprocess_command(run, state_dir)
    with open(path, "ab") as log:
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
    return _why_failed(run, state_dir, f"exit {code}")


class SweepExecutor:
    """Runs a planned sweep's unfinished runs and keeps the outcome; one process, or ``jobs`` subprocesses."""

    def __init__(self, spec: SweepSpec, runs: list[PlannedRun], *, progress: bool = True,
                 on_run_end: Optional[Callable[[PlannedRun, "SweepOutcome"], None]] = None):
        self.spec, self.runs, self.progress, self.on_run_end = spec, runs, progress, on_run_end
        self.state_dir = Path(spec.output_dir) / STATE_DIR
        self.outcome = SweepOutcome(planned=[r.name for r in runs])
        self.stop_hint = f"rerun the same sweep to continue ({len(runs)} runs; finished ones are skipped)"
        self.bar = None

    def todo(self) -> list[PlannedRun]:
        """The runs still to do; finished ones are checked, tidied and skipped."""
        todo = []
        for r in self.runs:
            status = r.status()
            if status != "new":
                check_same(r)
            if status == "finished":
                RunDir(r.path).tidy()  # what a kill between results.json and checkpoint removal left
                self.outcome.skipped.append(r.name)
                continue
            if status == "unfinished" and r.method.kind == TRAIN:
                self.outcome.resumed.append(r.name)
            todo.append(r)
        return todo

    def finished(self, r: PlannedRun) -> None:
        self.outcome.executed.append(r.name)
        self.bar.update(1)
        if self.on_run_end is not None:
            self.on_run_end(r, self.outcome)

    def failed(self, r: PlannedRun, why: str) -> None:
        self.outcome.failed[r.name] = why
        write(f"clipood sweep: {r.name} failed: {why}")

    def blocked(self, r: PlannedRun) -> Optional[str]:
        return f"not run: its base run {r.base} failed" if r.base and r.base in self.outcome.failed else None

    def in_process(self, r: PlannedRun) -> None:
        """One run in this process; a run's own error is recorded and the sweep goes on."""
        if (why := self.blocked(r)) is not None:
            self.outcome.failed[r.name] = why
            return
        self.bar.set_postfix_str(r.name)
        _write_sidecar(r, self.spec.name)
        try:
            execute_in_process(r, progress=self.progress)
        except Interrupted as e:
            raise Interrupted(f"sweep stopped during {r.name} ({e}); {self.stop_hint}") from None
        except KeyboardInterrupt:
            raise Interrupted(f"sweep interrupted during {r.name}; {self.stop_hint}") from None
        except ClipoodError as e:
            self.failed(r, str(e))
            return
        self.finished(r)

    def in_subprocesses(self, todo: list[PlannedRun], jobs: int) -> None:
        """Training and zero-shot runs ``jobs`` at a time in their own processes, then WiSE-FT in this one."""
        from ..training.signals import handling_stop_signals
        children = _Children()
        threads = max(1, (os.cpu_count() or 1) // jobs)
        slots = GpuSlots(jobs, visible_gpus())
        separate = [r for r in todo if r.method.kind != WISE_FT]
        with handling_stop_signals(children.stop):
            for r in separate:
                _write_sidecar(r, self.spec.name)
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(_run_child, r, self.state_dir, children, threads, slots): r
                           for r in separate}
                for fut in as_completed(futures):
                    r, err = futures[fut], fut.result()
                    if err is None:
                        self.finished(r)
                    elif not children.stopping:
                        self.failed(r, err)
            if children.stopping:
                raise Interrupted(f"sweep stopped by a signal; running runs checkpointed; {self.stop_hint}")
        self.post_hoc(todo)

    def post_hoc(self, todo: list[PlannedRun]) -> None:
        for r in todo:  # post-hoc steps, once their base runs are done
            if r.method.kind == WISE_FT:
                self.in_process(r)

    def on_cluster(self, todo: list[PlannedRun], launcher: str, slurm: SlurmOptions) -> None:
        """Training and zero-shot runs as one submitit job array (Slurm, or its local executor), then WiSE-FT."""
        separate = [r for r in todo if r.method.kind != WISE_FT]
        for r in separate:
            _write_sidecar(r, self.spec.name)
        commands = {r.name: subprocess_command(r, self.state_dir) for r in separate}
        logs = {r.name: log_path(r, self.state_dir) for r in separate}
        try:
            errors = submit(commands, logs, self.state_dir / "submitit", launcher, slurm) if separate else {}
        except KeyboardInterrupt:
            raise Interrupted(f"sweep interrupted while waiting; submitted jobs keep running (scancel them to stop; "
                              f"their state is in {self.state_dir / 'submitit'}); {self.stop_hint}") from None
        for r in separate:
            if errors.get(r.name) is None and r.status() == "finished":
                self.finished(r)
            else:
                self.failed(r, _why_failed(r, self.state_dir, errors.get(r.name) or "did not finish"))
        self.post_hoc(todo)

    def run(self, jobs: int = 1, launcher: str = "local", slurm: Optional[SlurmOptions] = None) -> "SweepOutcome":
        check_launcher(launcher, slurm)
        if jobs < 1:
            raise ConfigError(f"--jobs: {jobs} is out of range; allowed: an integer >= 1")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.state_dir / "spec.yaml", yaml.safe_dump(spec_to_dict(self.spec), sort_keys=False))
        todo = self.todo()
        self.bar = progress_bar(total=len(self.runs), initial=len(self.outcome.skipped), desc="sweep", unit="run",
                        disable=not self.progress, dynamic_ncols=True)
        try:
            if launcher != "local":
                self.on_cluster(todo, launcher, slurm or SlurmOptions())
            elif jobs == 1:
                for r in todo:
                    self.in_process(r)
            else:
                self.in_subprocesses(todo, jobs)
        finally:
            self.bar.close()
        return self.outcome


def run_sweep(spec: SweepSpec, *, jobs: int = 1, progress: bool = True,
              on_run_end: Optional[Callable[[PlannedRun, SweepOutcome], None]] = None,
              runs: Optional[list[PlannedRun]] = None, launcher: str = "local",
              slurm: Optional[SlurmOptions] = None) -> SweepOutcome:
    """Run every unfinished run of the sweep; finished ones are skipped, interrupted ones resume.

    ``on_run_end`` is called after each run this call finishes (tests use it to interrupt).
    Errors of single runs (a bad image, a diverging loss) are collected and the sweep goes on;
    SIGINT/SIGTERM stop it (the running run checkpoints) with a message saying how to continue.
    """
    return SweepExecutor(spec, plan(spec) if runs is None else runs, progress=progress,
                         on_run_end=on_run_end).run(jobs, launcher, slurm)
