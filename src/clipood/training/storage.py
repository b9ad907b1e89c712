"""How trained weights are kept between steps (``--master-weights``).

'fp32' (clipood's default) keeps every weight in fp32. 'fp16' is the official code's: its
image tower lives in fp16 as ``clip.model.convert_weights`` leaves it (Linear and Conv weights
and biases, the attention in-projections and the ``proj`` projection; norms and embeddings
stay fp32), and each step converts it to fp32 for AdamW and back, so every update is rounded
to fp16 after the step. Here the weights stay fp32 tensors that hold fp16 values: the same
numbers, with the optimizer state in fp32 as in the official code. At the paper's learning
rates most of an update is smaller than a weight's fp16 spacing and is rounded away
(docs/method.md measures how much).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["fp16_stored", "round_to_fp16_"]

_ATTENTION = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v")
_PROJECTIONS = ("text_projection", "proj")


def fp16_stored(module: nn.Module) -> list[torch.Tensor]:
    """The parameters ``clip.model.convert_weights`` turns to fp16, each once, in module order."""
    out, seen = [], set()

    def add(t) -> None:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and id(t) not in seen:
            seen.add(id(t))
            out.append(t)

    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            add(m.weight)
            add(m.bias)
        if isinstance(m, nn.MultiheadAttention):
            for name in _ATTENTION:
                add(getattr(m, name, None))
        for name in _PROJECTIONS:
            if isinstance(m._parameters.get(name), nn.Parameter):
                add(m._parameters[name])
    return out


@torch.no_grad()
def round_to_fp16_(tensors: Sequence[torch.Tensor]) -> None:
    """Round each tensor's values to the nearest fp16 number, in place (fp32 -> fp16 -> fp32)."""
    for t in tensors:
        t.copy_(t.to(torch.float16))
