"""Where a sweep's runs execute: this machine (a GPU per job) or a Slurm cluster (submitit).

``--jobs N`` runs N at a time on this machine, each in its own process; when the machine has
GPUs, each job gets its own (``CUDA_VISIBLE_DEVICES``), and with more jobs than GPUs they
share them round-robin, which is said. ``--launcher slurm`` submits every run as one task of
a Slurm job array through submitit (partition, time, GPUs per job, array parallelism as
options) and waits; ``--launcher submitit-local`` makes the same submission with submitit's
local executor, to check a cluster sweep on one machine. Every launcher runs the same
``python -m clipood.cli`` commands with the same skip / resume rules: a rerun skips finished
runs and resumes the others from their checkpoints.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..console import note
from ..errors import ConfigError

__all__ = ["LAUNCHERS", "GpuSlots", "SlurmOptions", "check_launcher", "run_logged", "submit", "visible_gpus"]

LAUNCHERS = ("local", "slurm", "submitit-local")


@dataclass
class SlurmOptions:
    """What each Slurm task asks for (``--slurm-*`` flags)."""

    partition: Optional[str] = None
    time_min: int = 240
    gpus_per_job: int = 1
    cpus_per_task: int = 8
    mem_gb: Optional[int] = None
    array_parallelism: int = 64

    def check(self) -> None:
        for name, value, low in (("time", self.time_min, 1), ("gpus-per-job", self.gpus_per_job, 0),
                                 ("cpus-per-task", self.cpus_per_task, 1), ("array-parallelism",
                                                                           self.array_parallelism, 1)):
            if value < low:
                raise ConfigError(f"--slurm-{name}: {value} is out of range; allowed: an integer >= {low}")
        if self.mem_gb is not None and self.mem_gb < 1:
            raise ConfigError(f"--slurm-mem-gb: {self.mem_gb} is out of range; allowed: an integer >= 1")


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [x.strip() for x in env.split(",") if x.strip() and x.strip() != "-1"]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 -- no CUDA runtime: no GPUs
        return []


class GpuSlots:
    """``jobs`` slots; slot i runs on GPU ``gpus[i % len(gpus)]`` (no GPU: the environment is left alone)."""

    def __init__(self, jobs: int, gpus: list[str]):
        self.gpus, self.free = gpus, queue.Queue()
        for i in range(jobs):
            self.free.put(i)
        if gpus and jobs > len(gpus):
            note(f"--jobs {jobs} on {len(gpus)} GPU(s): jobs share them round-robin ({jobs / len(gpus):.1f} per GPU)")

    def take(self) -> tuple[int, dict]:
        slot = self.free.get()
        return slot, ({"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]} if self.gpus else {})

    def give_back(self, slot: int) -> None:
        self.free.put(slot)


def run_logged(cmd: list[str], log_path: str) -> int:
    """One run's command with its output appended to its log (what a Slurm task executes)."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


def check_launcher(launcher: str, opts: Optional[SlurmOptions] = None) -> None:
    """The launcher known, its package installed and, for Slurm, a Slurm here: before anything is written."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher: {launcher!r} is unknown; allowed: {', '.join(LAUNCHERS)}")
    if launcher == "local":
        return
    if importlib.util.find_spec("submitit") is None:
        raise ConfigError(f"--launcher {launcher}: the 'submitit' package is not installed; "
                          f"pip install 'clipood[slurm]' (or pip install submitit)")
    if launcher == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: no Slurm on this machine (sbatch is not on PATH); run the sweep on the "
                          "cluster's login node, or use --launcher local here (--launcher submitit-local tries the "
                          "same submission on this machine)")
    (opts or SlurmOptions()).check()


def submit(commands: dict[str, list[str]], logs: dict[str, Path], folder: Path, launcher: str,
           opts: SlurmOptions) -> dict[str, Optional[str]]:
    """Submit every command as one task of a job array and wait; name -> None, or why it failed."""
    check_launcher(launcher, opts)
    import submitit
    cluster = "slurm" if launcher == "slurm" else "local"
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": opts.time_min, "name": "clipood-sweep"}
    if cluster == "slurm":
        params.update(slurm_array_parallelism=opts.array_parallelism, gpus_per_node=opts.gpus_per_job,
                      cpus_per_task=opts.cpus_per_task)
        if opts.partition:
            params["slurm_partition"] = opts.partition
        if opts.mem_gb:
            params["slurm_mem"] = f"{opts.mem_gb}G"
    else:
        params["gpus_per_node"] = min(opts.gpus_per_job, len(visible_gpus()))
    ex.update_parameters(**params)
    names = list(commands)
    jobs = ex.map_array(run_logged, [commands[n] for n in names], [str(logs[n]) for n in names])
    print(f"clipood sweep: {len(jobs)} run(s) submitted via submitit ({cluster}); job ids "
          f"{', '.join(j.job_id for j in jobs[:3])}{', ...' if len(jobs) > 3 else ''}; logs in {folder}",
          flush=True)
    out: dict[str, Optional[str]] = {}
    for name, job in zip(names, jobs):
        try:
            code = job.result()
            out[name] = None if code == 0 else f"exit {code}"
        except Exception as e:  # noqa: BLE001 -- a task that died (timeout, node failure): recorded, sweep goes on
            out[name] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return out
