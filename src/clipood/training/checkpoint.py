"""Resumable checkpoints, written atomically, checked by checksum, read without unpickling code.

A checkpoint holds everything that decides the rest of a run: the trained tensors,
the optimiser and scheduler, the running average and its weight sum, the step (the
data order is a function of the step), the RNG states and a fingerprint of the data.
``step-N.pt`` is written first, then ``step-N.pt.sha256`` with its SHA-256; a file
whose checksum is missing or wrong is never resumed from: the newest good one is, and
the run says which and why. ``torch.load`` with ``weights_only=True`` accepts only
tensors and plain containers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch

from ..console import note
from ..errors import ClipoodError
from ..io import atomic_path, sha256_file, write_text

__all__ = ["CHECKSUM", "PATTERN", "checkpoint_dir", "checksum_path", "list_checkpoints", "load_latest",
           "remove_checkpoints", "restore_optimisation", "rng_state", "save_checkpoint", "set_rng_state"]

PATTERN = re.compile(r"^step-(\d+)\.pt$")
CHECKSUM = ".sha256"


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


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM)


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoints/step-N.pt and its checksum atomically, then drop all but the newest ``keep``."""
    path = checkpoint_dir(run_dir) / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({"step": step, **state}, tmp)
        digest = sha256_file(tmp)
    write_text(checksum_path(path), f"{digest}  {path.name}\n")
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
        checksum_path(old).unlink(missing_ok=True)
    return path


def remove_checkpoints(run_dir: Path) -> None:
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if PATTERN.match(p.name) or p.name.endswith(CHECKSUM) or p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
    if not any(d.iterdir()):
        d.rmdir()


def _why_unusable(path: Path) -> Optional[str]:
    """None for a checkpoint whose bytes are those written, else the reason."""
    sums = checksum_path(path)
    if not sums.is_file():
        return "no checksum beside it (the write did not finish)"
    expected = sums.read_text(encoding="utf-8").split()[:1]
    if not expected or expected[0] != sha256_file(path):
        return "checksum mismatch: the file changed after it was written"
    return None


def load_latest(run_dir: Path, map_location="cpu", *, flag: str = "--resume") -> Optional[dict]:
    """The newest intact checkpoint; a newer unusable one is reported and skipped. None if there are none."""
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir)
    if not found:
        if not checkpoint_dir(run_dir).is_dir() and (run_dir / "metrics.jsonl").is_file():
            note(f"{flag}: {run_dir} has no checkpoints/ folder (deleted, or the run stopped before its first "
                 f"checkpoint); starting again from step 0")
        return None
    skipped = []
    for step, path in reversed(found):
        reason = _why_unusable(path)
        if reason is None:
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
            except Exception as e:  # intact bytes that torch cannot read: a foreign file
                reason = f"unreadable ({type(e).__name__})"
            else:
                for name, why in skipped:
                    note(f"{flag}: skipped {name} ({why}); resuming from {path.name} (step {step})")
                return state
        skipped.append((path.name, reason))
    raise ClipoodError(f"{flag}: no intact checkpoint in {checkpoint_dir(run_dir)} (newest: {skipped[0][0]}, "
                       f"{skipped[0][1]}); delete the folder to start the run again from step 0")
