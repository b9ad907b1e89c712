"""Everything around a training loop's few lines of maths, in one place, for fine-tuning and pretraining.

The loops (``loop.fit``, ``pretraining.trainer.fit``) read as their algorithm; this helper
does the rest, step by step: the bad-image policy on each batch, the progress bar, a stop
on a non-finite loss *before* the step reaches the average, log lines (``metrics.jsonl``
and, for evaluations, the console), the validation loss an averager asks for (SWAD),
evaluations every ``eval_every`` steps, checkpoints
every ``checkpoint_every`` steps and on SIGTERM/SIGINT, and the stop that follows a signal.
Without a run directory (``run=None``: a user's own loop in memory) nothing is written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from ..console import note, progress_bar
from ..data.bad_images import BadImages
from ..errors import ClipoodError, DataError, Interrupted, NonFiniteLoss
from ..io import DiskFull
from ..rundir import RunDir
from . import checkpoint as ckpt
from .distributed import SINGLE, DistContext
from .signals import stop_signals

__all__ = ["Housekeeping"]


@dataclass
class Housekeeping:
    total: int                                   # T
    start: int                                   # the step a resumed run continues after
    bad: BadImages
    state: Callable[[], dict]                    # what a checkpoint holds
    run: Optional[RunDir] = None
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    evaluate: Optional[Callable[[], dict]] = None    # a record of the current model, e.g. {"eval": ...}
    validate_every: int = 0                          # every k steps (and at T): ``validate(step)`` (SWAD's loss)
    validate: Optional[Callable[[int], dict]] = None
    log_fields: Callable[[], dict] = dict            # more fields for a log line (lr, logit scale)
    resume_command: str = ""
    min_batch: int = 1                            # readable images a batch needs (a contrastive one: 2)
    dist: DistContext = SINGLE
    progress: bool = True
    desc: str = "train"
    advice: str = "Lower --lr, enable --grad-clip, or check the data"
    step: int = field(init=False, default=0)

    def __enter__(self) -> "Housekeeping":
        if self.run is not None:
            self.run.truncate_metrics(self.start)  # a resumed run logs the steps after its checkpoint again
        self.step = self.start
        self._t0 = time.time()
        self._bar = progress_bar(total=self.total, initial=self.start, desc=self.desc, unit="step",
                         disable=not self.progress, dynamic_ncols=True)
        self._signals = stop_signals()
        self._stop = self._signals.__enter__()
        return self

    def __exit__(self, kind, value, tb) -> None:
        self._signals.__exit__(kind, value, tb)
        self._bar.close()
        if kind is None and self.step < self.total:
            raise ClipoodError(f"training stopped early at step {self.step} of {self.total}")

    # ------------------------------------------------------------------ per step

    def steps(self, batches: Iterable[tuple]) -> Iterator[tuple]:
        """(step, images, image indices) for steps start+1..T, the bad-image policy applied."""
        for step, (images, idx, unreadable) in enumerate(batches, start=self.start + 1):
            self.bad(unreadable)
            if len(idx) < self.min_batch:
                raise DataError(f"a training batch had fewer than {self.min_batch} readable images; check the "
                                f"images listed in bad_images.txt")
            self.step = step
            yield step, images, idx

    def check(self, loss) -> float:
        """The step's loss as a float; a NaN/inf one stops the run before the average sees it."""
        value = float(loss)
        if not math.isfinite(value):
            self._log({"step": self.step, "event": "non-finite loss", "loss": value})
            raise NonFiniteLoss(f"loss became {value} at step {self.step}; the average and the last checkpoint are "
                                f"untouched. {self.advice}")
        return value

    def after_step(self, loss: float) -> None:
        """Log, evaluate, checkpoint and stop on a signal, as due at this step."""
        step, T = self.step, self.total
        self._bar.update(1)
        if step % self.log_every == 0 or step == T:
            fields = self.log_fields()
            self._log({"step": step, "loss": loss, **fields, "elapsed_s": round(time.time() - self._t0, 3)})
            self._bar.set_postfix(loss=f"{loss:.4f}", **{k: f"{v:.3g}" for k, v in fields.items()
                                                         if isinstance(v, float)})
        if self.validate is not None and self.validate_every and (step % self.validate_every == 0 or step == T):
            self._log({"step": step, **self.validate(step)})
        if self.evaluate is not None and self.eval_every and step % self.eval_every == 0 and step < T:
            record = self.evaluate()
            self._log({"step": step, **record})
            note(f"step {step}/{T}: {summary_line(record)}")
        stopping = self.dist.any(self._stop["signal"] is not None)  # a signal to any rank stops all
        due = (self.checkpoint_every and step % self.checkpoint_every == 0) or stopping
        if due and step < T and self.run is not None:
            self.bad.gather(self.dist)  # so a resumed run still lists what every rank skipped before it
            if self.dist.is_main:  # rank 0 writes; the state is the same on every rank
                try:
                    ckpt.save_checkpoint(self.run.path, step, self.state(), self.keep_checkpoints)
                except DiskFull as e:
                    raise e.with_hint(f"the checkpoints written before are intact; free space, then: "
                                      f"{self.resume_command}") from None
        if stopping and step < T:
            self._bar.close()
            self.dist.barrier()  # the checkpoint is on disk before any rank exits
            saved = f"checkpoint saved. Continue with: {self.resume_command}" if self.run is not None else \
                "nothing saved (no run directory)"
            raise Interrupted(f"stopped by signal {self._stop['signal'] or 'on another rank'} at step {step}/{T}; "
                              f"{saved}")

    def _log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log(record)


def summary_line(record: dict) -> str:
    """One console line for an evaluation record: accuracy (and H) per split, or the pairs' retrieval."""
    parts = []
    for key in ("eval", "val"):
        entry = record.get(key) or {}
        if key == "eval":
            for name, e in entry.items():
                acc = e.get("accuracy")
                if acc is None or acc != acc:
                    continue
                parts.append(f"{name} {100 * acc:.1f}" + (f" (H {100 * e['H']:.1f})" if "H" in e else ""))
        elif entry:
            parts.append(f"held-out pairs: loss {entry.get('loss')}, image->text {100 * entry.get('i2t_top1', 0):.1f}"
                         f", text->image {100 * entry.get('t2i_top1', 0):.1f}")
    return ", ".join(parts) or "evaluated"
