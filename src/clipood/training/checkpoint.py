"""Resumable checkpoints, written atomically, checked by checksum, read without unpickling code.

A checkpoint holds everything that decides the rest of a run: the trained tensors,
the optimiser and scheduler, the running average and its weight sum, the step (the
data order is a function of the step), the RNG states and a fingerprint of the data.
``step-N.pt`` is written first, then ``step-N.pt.sha256`` with its SHA-256; a file
whose checksum is missing or wrong is never resumed from: the newest good one is, and
the run says which and why. ``torch.load`` with ``weights_only=True`` accepts only
tensors and plain containers.

A checkpoint also records the options the run was started with (``config.config_record``: every
option but those of how it runs), so a resumed run
refuses a ``config.yaml`` edited since (``check_same_config``): the record, the report and
the optimiser state would otherwise tell three different stories.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch

from ..config import changed_options, config_record, moved_keys
from ..console import note
from ..errors import ClipoodError
from ..io import atomic_path, sha256_file, write_text
from ..rundir import checkpoint_dir, checksum_path, list_checkpoints

__all__ = ["check_same_config", "load_latest", "not_fitting", "restore_optimisation", "rng_state", "save_checkpoint",
           "set_rng_state"]


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
    with not_fitting(state):
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        bad_seen.update({path: reason for path, reason in state.get("bad_images", [])})
        return int(state["step"])


@contextmanager
def not_fitting(state: dict, flag: str = "--resume") -> Iterator[None]:
    """A checkpoint whose contents do not fit this run (a key, a shape or a type of another run): one line
    naming the file, not the KeyError or RuntimeError of the code that reads it."""
    try:
        yield
    except ClipoodError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        what = " ".join(str(e).split())[:200] or type(e).__name__
        raise ClipoodError(f"{flag}: {state.get('file', 'the checkpoint')} does not fit this run ({type(e).__name__}: "
                           f"{what}); delete it (the newest intact older one is then used, or the run starts again "
                           f"from step 0)") from None


# Where the data is may change between a checkpoint and its resume (a dataset staged to another disk): the
# data fingerprint checks that the images, or the caption table, are the same by their contents.
CHECKED_BY_CONTENT = ("data.root", "data.csv")


def _flag(cfg, key: str) -> str:
    from ..config import flag_name, iter_fields
    sec, name = key.split(".", 1)
    f = next((f for s, _, f in iter_fields(type(cfg)) if s == sec and f.name == name), None)
    return f"--{flag_name(f)} ({key})" if f is not None else key


def check_same_config(saved: Optional[dict], cfg, flag: str = "--resume") -> None:
    """Refuse to continue with options other than those the checkpoint was made with, naming each one."""
    if not isinstance(saved, dict) or not isinstance(saved.get("options"), dict):
        note(f"{flag}: the checkpoint holds no record of the options it was made with (written by an older "
             f"clipood); the run's config.yaml is taken as it is now")
        return
    now = config_record(cfg)
    if now["sha256"] == saved.get("sha256"):
        return
    before, after = moved_keys(saved["options"]), now["options"]
    changed = changed_options(saved, cfg)
    for key in [k for k in changed if k in CHECKED_BY_CONTENT]:
        note(f"{flag}: {_flag(cfg, key)} moved from {before.get(key)} to {after.get(key)}; the data there is checked "
             f"by its contents")
        changed.remove(key)
    if not changed:
        return
    said = "; ".join(f"{_flag(cfg, k)} was {before.get(k, 'absent')!r}, is now {after.get(k, 'absent')!r}"
                     for k in changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    raise ClipoodError(f"{flag}: the run's config.yaml changed since its checkpoint was written: {said}. A resumed "
                       f"run keeps the options it started with; restore config.yaml, or start a new run (only "
                       f"options of how it runs may change, e.g. --workers, --device, --log-every)")


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


def _why_unusable(path: Path) -> Optional[str]:
    """None for a checkpoint whose bytes are those written, else the reason."""
    sums = checksum_path(path)
    if not sums.is_file():
        return "no checksum beside it (the write did not finish)"
    try:
        expected = sums.read_bytes()[:200].decode("ascii").split()[:1]
    except (OSError, UnicodeDecodeError):
        return f"its checksum file {sums.name} is not a SHA-256 line (damaged)"
    try:
        actual = sha256_file(path)
    except OSError as e:  # a folder or an unreadable file under a checkpoint's name
        return f"unreadable ({e.strerror})"
    if not expected or expected[0] != actual:
        return "checksum mismatch: the file changed after it was written"
    return None


def load_latest(run_dir: Path, map_location="cpu", *, flag: str = "--resume",
                required: tuple[str, ...] = ("step",), renamed: Optional[dict[str, str]] = None) -> Optional[dict]:
    """The newest intact checkpoint; a newer unusable one is reported and skipped. None if there are none.

    ``required``: the keys this kind of run writes; a checkpoint without them (of another kind of run, or
    another program's) is unusable; ``renamed`` (old key -> key) reads an older checkpoint's keys as this run's.
    The file's name is in the state as ``"file"``."""
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
                for old, new in (renamed or {}).items():
                    if isinstance(state, dict) and old in state and new not in state:
                        state[new] = state.pop(old)
                missing = [k for k in required if k not in state] if isinstance(state, dict) else list(required)
                if missing:
                    reason = f"not a checkpoint of this kind of run (no {', '.join(map(repr, missing[:3]))})"
                else:
                    for name, why in skipped:
                        note(f"{flag}: skipped {name} ({why}); resuming from {path.name} (step {step})")
                    state["file"] = str(path)
                    return state
        skipped.append((path.name, reason))
    raise ClipoodError(f"{flag}: no intact checkpoint in {checkpoint_dir(run_dir)} (newest: {skipped[0][0]}, "
                       f"{skipped[0][1]}); delete the folder to start the run again from step 0")
