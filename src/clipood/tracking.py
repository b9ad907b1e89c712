"""Experiment tracking (``--report-to tensorboard,wandb``), fed by the records of ``metrics.jsonl``.

Every record a run logs (loss, lr, evaluations) goes to ``metrics.jsonl`` and, when asked, to
TensorBoard (event files in ``RUN/tensorboard``) and Weights & Biases (``wandb``; offline with
``WANDB_MODE=offline``, into ``RUN/wandb``). Both get the resolved configuration as
hyper-parameters and the final results as a summary. Neither package is needed unless asked
for (``pip install 'clipood[tracking]'``); a missing one is one line naming it. Only the main
process (rank 0) reports.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import ClipoodError, ConfigError

__all__ = ["REPORTERS", "Tracker", "TrackingError", "check_report_to", "final_scalars", "flat_scalars",
           "parse_report_to", "start_trackers"]

REPORTERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --report-to name -> the package it needs


class TrackingError(ClipoodError):
    """A reporter that could not start (W&B without a login, say): one line, before any training step."""


def parse_report_to(value: str) -> list[str]:
    """'tensorboard,wandb' -> ['tensorboard', 'wandb']; 'none' or '' -> []."""
    names = [x.strip() for x in (value or "").split(",") if x.strip() and x.strip() != "none"]
    unknown = [n for n in names if n not in REPORTERS]
    if unknown:
        raise ConfigError(f"--report-to: {unknown[0]!r} is unknown; allowed: none, or a comma-separated list of "
                          f"{', '.join(REPORTERS)}")
    return list(dict.fromkeys(names))


def check_report_to(value: str) -> None:
    """Each reporter known and its package installed (before a run directory is made)."""
    for name in parse_report_to(value):
        if importlib.util.find_spec(REPORTERS[name]) is None:
            raise ConfigError(f"--report-to {name}: the '{REPORTERS[name]}' package is not installed; "
                              f"pip install 'clipood[tracking]' (or pip install {REPORTERS[name]})")


def flat_scalars(record: dict, prefix: str = "", skip: Iterable[str] = ("step",)) -> dict[str, float]:
    """Numbers of a nested record as 'a/b/c' -> value (booleans, strings and NaN left out)."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if k in skip and not prefix:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_scalars(v, key + "/", ()))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


def final_scalars(results: dict) -> dict[str, float]:
    """The results' zero-shot and final evaluations as 'zeroshot/SPLIT/METRIC' -> value."""
    return flat_scalars({k: results[k] for k in ("zeroshot", "final") if isinstance(results.get(k), dict)})


class Tracker:
    """One reporter: ``log`` a record at its step, ``finish`` with the results (or without, on failure)."""

    def log(self, record: dict) -> None: ...

    def resume_at(self, step: int) -> None:
        """A resumed run logs the steps after its checkpoint ``step`` again."""

    def finish(self, results: Optional[dict]) -> None: ...


class TensorBoard(Tracker):
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter
        self.open = lambda **kw: SummaryWriter(log_dir=str(run_dir / "tensorboard"), **kw)
        self.writer = self.open()
        self.config, self.last_step = config, 0
        self.writer.add_text("config", "\n".join(f"    {k}: {v!r}" for k, v in config.items()), 0)

    def resume_at(self, step: int) -> None:
        if step > 0:  # TensorBoard hides what the killed run wrote after the checkpoint (purge_step)
            self.writer.close()
            self.writer, self.last_step = self.open(purge_step=step + 1), step

    def log(self, record: dict) -> None:
        step = int(record.get("step", self.last_step))
        self.last_step = max(self.last_step, step)
        for k, v in flat_scalars(record).items():
            self.writer.add_scalar(k, v, step)

    def finish(self, results: Optional[dict]) -> None:
        if results is not None:
            final = final_scalars(results)
            for k, v in final.items():
                self.writer.add_scalar(k, v, self.last_step)
            hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in self.config.items()}
            self.writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()}, run_name="hparams")
        self.writer.close()


class WandB(Tracker):
    def __init__(self, run_dir: Path, config: dict):
        import wandb
        run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]  # a resumed run continues
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "clipood"), name=run_dir.name, id=run_id,
                                  group=os.environ.get("WANDB_RUN_GROUP", run_dir.parent.name), dir=str(run_dir),
                                  config=config, resume="allow", reinit="finish_previous")
        except Exception as e:  # no API key, no network, a bad entity: wandb's own reason, in one line
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise TrackingError(f"--report-to wandb: wandb could not start a run: {reason} Log in with `wandb "
                                f"login`, or set WANDB_MODE=offline (the run is kept in {run_dir / 'wandb'}; "
                                f"`wandb sync` uploads it later). Nothing was trained ({run_dir} holds the "
                                f"config only).") from None

    def log(self, record: dict) -> None:
        scalars = flat_scalars(record)
        step = int(record["step"]) if "step" in record else None
        if step is not None and step < self.run.step:
            return  # a resumed run's repeat of a step W&B already has (the same values: resume is bit-exact)
        if scalars:
            self.run.log(scalars, step=step)

    def finish(self, results: Optional[dict]) -> None:
        if results is not None:
            self.run.summary.update(final_scalars(results))
        self.run.finish(exit_code=0 if results is not None else 1)


def start_trackers(report_to: str, run_dir: Path, config: dict[str, Any]) -> list[Tracker]:
    if os.environ.get("RANK", "0") != "0":
        return []
    kinds = {"tensorboard": TensorBoard, "wandb": WandB}
    return [kinds[name](Path(run_dir), config) for name in parse_report_to(report_to)]
