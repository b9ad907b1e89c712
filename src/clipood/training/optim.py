"""AdamW with linear warm-up and cosine decay (paper: lr 5e-6, wd 0.1, no warm-up, cosine over all steps)."""

from __future__ import annotations

import inspect
import math
import warnings

import torch

__all__ = ["apply_gradients", "build_optimizer", "build_scheduler", "cosine_with_warmup"]


def cosine_with_warmup(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base lr at scheduler step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params, *, lr: float, weight_decay: float, betas, eps: float, device: torch.device):
    """AdamW; fused on CUDA when this torch has it (same maths, fewer kernels)."""
    kwargs = dict(lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps)
    if device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        kwargs["fused"] = True
    return torch.optim.AdamW(params, **kwargs)


def build_scheduler(optimizer, *, total_steps: int, warmup_steps: int, min_lr_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total=total_steps, warmup=warmup_steps, min_ratio=min_lr_ratio))


def apply_gradients(optimizer, scheduler, scaler, grad_clip) -> None:
    """The update after backward: unscale (fp16), clip the gradient norm, step, advance the schedule.

    An fp16 step the scaler skips (inf/NaN gradients) still advances the schedule, so the lr
    stays a function of the step counter t, like the averaging weights (Eq. 6)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    with warnings.catch_warnings():  # torch's "scheduler before optimizer" warning when step 1 was skipped
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()
