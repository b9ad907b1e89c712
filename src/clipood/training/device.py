"""Where a run computes and in what precision: --device and --precision resolved for this machine."""

from __future__ import annotations

from typing import Optional

import torch

from ..config import PRECISIONS
from ..errors import ConfigError
from .distributed import SINGLE, DistContext

__all__ = ["resolve_device", "resolve_precision"]


def resolve_device(name: str, dist: DistContext = SINGLE) -> torch.device:
    if dist.enabled:  # one process per device: torchrun's LOCAL_RANK picks the GPU
        return dist.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {name!r} asked for but CUDA is not available here; use --device cpu or auto")
    return dev


# --precision (config.PRECISIONS) -> the autocast dtype; None: fp32, no autocast. 'auto' is resolved below.
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
assert set(PRECISIONS) == {"auto", *AUTOCAST}, "config.PRECISIONS and AUTOCAST name the same precisions"


def resolve_precision(name: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype (None: fp32). Master weights and the average are always fp32."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("--precision: fp16 needs CUDA; use bf16 or fp32 on CPU")
    return AUTOCAST[name]
