"""How the image tower runs: options that change speed and memory, never the maths.

channels_last (convolutional towers), activation checkpointing and torch.compile
are applied to the image tower before the averager copies theta_0 (so the average keeps
the tower's memory format) and before DDP wraps it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["COMPILE_OPTIONS", "apply_speed_options", "enable_grad_checkpointing", "is_convolutional",
           "micro_batches", "to_device", "use_channels_last"]

# Keyword arguments of the image tower's torch.compile (tests swap in backend='eager').
COMPILE_OPTIONS: dict[str, Any] = {}


def is_convolutional(visual: nn.Module) -> bool:
    """More than the one patch-embedding convolution of a ViT: RN50, ConvNeXt and the like."""
    return sum(isinstance(m, nn.Conv2d) for m in visual.modules()) > 1


def use_channels_last(setting: str, visual: nn.Module, device: torch.device) -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    return is_convolutional(visual)  # CPU too (docs/performance.md): EfficientNet-Lite0 forward 2.9x, RN50 1.35x


def enable_grad_checkpointing(visual: nn.Module) -> None:
    """open_clip's set_grad_checkpointing, checked: some towers (ModifiedResNet) ignore it silently."""
    if hasattr(visual, "set_grad_checkpointing"):
        visual.set_grad_checkpointing(True)
    if not any(getattr(m, "grad_checkpointing", False) is True for m in visual.modules()):
        raise ConfigError(f"--grad-checkpointing: the image tower ({type(visual).__name__}) does not support "
                          f"activation checkpointing; drop the flag or use a ViT tower")


def apply_speed_options(visual: nn.Module, device: torch.device, *, channels_last: str, grad_checkpointing: bool,
                        compile: bool) -> dict:
    """Apply --channels-last, --grad-checkpointing and --compile to the tower; returns what was done."""
    done = {"channels_last": False, "grad_checkpointing": False, "compile": False}
    if use_channels_last(channels_last, visual, device):
        visual.to(memory_format=torch.channels_last)  # 4-D weights only; Parameters keep their identity
        done["channels_last"] = True
    if grad_checkpointing:
        enable_grad_checkpointing(visual)
        done["grad_checkpointing"] = True
    if compile:
        visual.compile(**COMPILE_OPTIONS)  # in place: parameter names and state_dict keys unchanged
        done["compile"] = True
    return done


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Host batch to the device without blocking (pinned memory), in the tower's memory format."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def micro_batches(n: int, accum_steps: int) -> list[slice]:
    """Split n rows into at most accum_steps non-empty, near-equal consecutive slices."""
    k = max(1, min(accum_steps, n))
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    out, start = [], 0
    for size in sizes:
        out.append(slice(start, start + size))
        start += size
    return out
