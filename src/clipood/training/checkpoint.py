"""Resumable checkpoints, written atomically and read without unpickling code.

A checkpoint holds everything that decides the rest of a run: the trained tensors,
the optimiser and scheduler, the running average and its weight sum, the step (the
data order is a function of the step), and the RNG states. ``torch.load`` with
``weights_only=True`` accepts only tensors and plain containers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch

from ..errors import ClipoodError
from ..io import atomic_path

PATTERN = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := PATTERN.match(p.name))]
    return sorted(found)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_optimisation(state: dict, optimizer, scheduler, scaler, bad_seen: dict) -> int:
    """Put back what every resumable loop keeps beside its weights; returns the checkpoint's step."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    bad_seen.update({path: reason for path, reason in state.get("bad_images", [])})
    return int(state["step"])


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoints/step-N.pt atomically, then drop all but the newest ``keep``."""
    path = checkpoint_dir(run_dir) / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({"step": step, **state}, tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def remove_checkpoints(run_dir: Path) -> None:
    for _, path in list_checkpoints(run_dir):
        path.unlink(missing_ok=True)
    d = checkpoint_dir(run_dir)
    if d.is_dir() and not any(d.iterdir()):
        d.rmdir()


def load_latest(run_dir: Path, map_location="cpu") -> Optional[dict]:
    """The newest readable checkpoint (a torn newer file would be skipped), or None."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # corrupt file: fall back to the previous one
            last_error = e
            continue
    if list_checkpoints(run_dir):
        raise ClipoodError(f"--resume: no readable checkpoint in {checkpoint_dir(run_dir)} ({last_error})")
    return None
