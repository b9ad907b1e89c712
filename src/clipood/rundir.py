"""A run directory and what it holds.

    RUN/config.yaml        the full resolved configuration (paths absolute)
    RUN/metrics.jsonl      one JSON object per log/eval event
    RUN/results.json       final accuracies (zero-shot and trained), written last
    RUN/model/             the averaged model: an open_clip local-dir folder
    RUN/checkpoints/       resumable training state
    RUN/bad_images.txt     images skipped under --bad-images skip
    RUN/.lock              held (flock) by the one process that owns the run

A run belongs to one process at a time: ``RunDir.lock`` takes an advisory lock, and a
second process is refused with the holder's PID. Opening a run clears the debris of a
killed writer (temporary files, and the checkpoints a finished run no longer needs).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .config import Config, config_record, load_yaml, save_yaml, with_absolute_paths
from .errors import ClipoodError
from .io import DiskFull, is_disk_full, read_json, remove_debris, write_json, write_text

__all__ = ["CHECKPOINT", "CHECKSUM", "CONFIG_RECORD", "LOCK_FILE", "RunDir", "checkpoint_dir", "checksum_path",
           "default_name", "list_checkpoints", "remove_checkpoints", "run_path"]

LOCK_FILE = ".lock"
STOPPED_START_RECORDS = ("metrics.jsonl", "zeroshot.json", "bad_images.txt")  # a run's records before its state
CONFIG_RECORD = ".config-record.json"  # the options a run started with (config.config_record), for a resume
# that finds no checkpoint to compare with
CHECKPOINT = re.compile(r"^step-(\d+)\.pt$")  # RUN/checkpoints/step-N.pt (training.checkpoint writes them)
CHECKSUM = ".sha256"  # beside each checkpoint: step-N.pt.sha256


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file of a run, oldest first (intact or not)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := CHECKPOINT.match(p.name))]
    return sorted(found)


def remove_checkpoints(run_dir: Path) -> None:
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if CHECKPOINT.match(p.name) or p.name.endswith(CHECKSUM) or p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
    if not any(d.iterdir()):
        d.rmdir()


def default_name(cfg: Config, method: Optional[str] = None) -> str:
    """[<dataset>-]<method>-<held out>[-b2n]-seed<seed>-<time>; the method of a training run is its loss and
    averaging ('mms-bma'), after what trains when not the image tower alone ('lp-ft-linear-none')."""
    held = "+".join(cfg.data.holdout_domains) or "all"
    b2n = "-b2n" if cfg.data.base_to_new else ""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = f"{cfg.data.dataset.lower()}-" if cfg.data.dataset else ""
    tuning = "" if cfg.tuning.name == "image" else f"{cfg.tuning.name}-"
    method = method or f"{tuning}{cfg.loss.name}-{cfg.averaging.name}"
    return f"{dataset}{method}-{held}{b2n}-seed{cfg.train.seed}-{stamp}"


def run_path(output_dir: str, name: str) -> Path:
    """Where a run of ``name`` goes (the commands check both first: ``config.validate``)."""
    return Path(output_dir).expanduser() / name  # as config.yaml records it (config.io.expand_home)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: Optional[int] = None
        self._trackers: list = []

    @classmethod
    def create(cls, cfg, *, name=default_name, command: str = "train",
               notes: Optional[dict[str, str]] = None) -> "RunDir":
        """A new run directory for ``cfg`` (any config tree with a ``run`` section), owned by this process;
        ``notes`` are comments in its config.yaml (``save_yaml``)."""
        path = run_path(cfg.run.output_dir, cfg.run.name or name(cfg))
        if (path / "results.json").exists():
            raise ClipoodError(f"{path} already holds a finished run; choose another --name or delete it")
        if (path / "checkpoints").is_dir() and any((path / "checkpoints").glob("step-*.pt")):
            raise ClipoodError(f"{path} holds an unfinished run; continue it with 'clipood {command} --resume "
                               f"{path}' or choose another --name")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.acquire()
        remove_debris(path)
        run._clear_stopped_start()
        cfg.run.name = path.name
        save_yaml(with_absolute_paths(cfg), path / "config.yaml", notes)
        run.write_config_record(cfg)
        return run

    def write_config_record(self, cfg) -> None:
        """What the run starts with, beside config.yaml (which a user may edit): checkpoints hold it too."""
        write_json(self.path / CONFIG_RECORD, config_record(cfg))

    @classmethod
    def open(cls, path: str | Path, flag: str = "--resume", base: Optional[object] = None) -> tuple["RunDir", object]:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ClipoodError(f"{flag}: {path} is not a run directory (no config.yaml)")
        return cls(path), load_yaml(path / "config.yaml", base)

    def _clear_stopped_start(self) -> None:
        """A run that stopped before its first checkpoint (killed, or an error) left records and no state to
        continue from: a new run in its folder starts them afresh, so that nothing is logged twice and no
        zero-shot evaluation of other options is taken for this run's."""
        stale = [self.path / n for n in STOPPED_START_RECORDS if (self.path / n).is_file()]
        if not stale:
            return
        from .console import note
        for p in stale:
            p.unlink()
        note(f"{self.path}: held a run that stopped before its first checkpoint; starting afresh (removed "
             f"{', '.join(p.name for p in stale)})")

    # ---------------------------------------------------------------- ownership

    def acquire(self) -> "RunDir":
        """Take the run's lock for this process (until it exits or ``release``); refuse if another holds it."""
        if self._lock_fd is not None:
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ClipoodError(f"{self.path} is in use by another clipood process (PID {holder}); wait for it to "
                               f"finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return self

    def track(self, report_to: str, config) -> "RunDir":
        """Send what this run logs to the trackers of --report-to too (tracking.py), the config as
        hyper-parameters; the results (``write_results``) end them."""
        from .config import flatten, to_dict
        from .tracking import start_trackers
        self._trackers = start_trackers(report_to, self.path, flatten(to_dict(config)))
        return self

    def _end_tracking(self, results: Optional[dict]) -> None:
        trackers, self._trackers = self._trackers, []
        for t in trackers:
            t.finish(results)

    def release(self) -> None:
        self._end_tracking(None)  # a run that stopped before its results
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    @contextmanager
    def owned(self) -> Iterator["RunDir"]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def tidy(self) -> None:
        """Clear what killed writers left: temporary files, and checkpoints once results.json exists."""
        remove_debris(self.path)
        if (self.path / "results.json").exists():
            remove_checkpoints(self.path)

    # ---------------------------------------------------------------- contents

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log(self, record: dict) -> None:
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(self.metrics_path) from None
            raise
        for t in self._trackers:
            t.log(record)

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, drop events logged after the checkpoint (they will be logged again), here and in
        the trackers."""
        for t in self._trackers:
            t.resume_at(after_step)
        if not self.metrics_path.exists():
            return
        keep, dropped = [], 0
        for raw in self.metrics_path.read_bytes().splitlines():
            try:
                line = raw.decode("utf-8")
                rec = json.loads(line)
                step = rec.get("step", 0) if isinstance(rec, dict) else None
                if not isinstance(step, (int, float)) or isinstance(step, bool):
                    raise ValueError(f"no step in {line[:80]!r}")
            except ValueError:  # JSONDecodeError and UnicodeDecodeError too: a line torn by a kill, or damage
                dropped += raw.strip() != b""
                continue
            if step <= after_step:
                keep.append(line)
        if dropped:
            from .console import note
            note(f"{self.metrics_path}: dropped {dropped} line(s) that are not metrics records (torn by a kill, or "
                 f"damaged); the steps after the checkpoint are logged again")
        write_text(self.metrics_path, "".join(ln + "\n" for ln in keep))

    def write_results(self, results: dict) -> None:
        write_json(self.path / "results.json", results)
        self._end_tracking(results)

    def write_bad_images(self, bad: list[tuple[str, str]]) -> None:
        write_text(self.path / "bad_images.txt", "".join(f"{p}\t{r}\n" for p, r in bad))

    def results(self) -> Optional[dict]:
        p = self.path / "results.json"
        return read_json(p, "results") if p.exists() else None
