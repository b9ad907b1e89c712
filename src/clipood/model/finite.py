"""A broken model never scores: weights holding NaN or inf are refused where they are loaded.

With one NaN in a weight every score is NaN, and argmax over NaN picks class 0: an evaluation
prints 1/C accuracy, ``predict`` writes ``nan`` scores, WiSE-FT "chooses" an alpha, all without a
word. One pass over the tensors (parameters and buffers, e.g. BatchNorm statistics) at load time
costs a fraction of a second for a ViT-B/16 and catches every command at once.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import ModelError

__all__ = ["check_finite", "load_weights"]


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise one ModelError line naming the model (``what``) and its first non-finite tensor."""
    bad = []
    with torch.no_grad():
        for name, t in tensors.items():
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append((name, int((~torch.isfinite(t)).sum()), t.numel()))
    if bad:
        name, n, numel = bad[0]
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise ModelError(f"{what}: its weights hold NaN or inf ({name}: {n} of {numel} values{more}); the model is "
                         f"broken and would score every image the same; train or export it again")


def load_weights(path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A weights file (safetensors, or open_clip's torch-saved .bin/.pth state dict, read with weights_only), checked:
    a damaged file or non-finite weights is one line naming it."""
    from safetensors.torch import load_file
    try:
        if str(path).endswith(".safetensors"):
            tensors = load_file(str(path), device=device)
        else:
            tensors = torch.load(str(path), map_location=device, weights_only=True)
            tensors = tensors.get("state_dict", tensors) if isinstance(tensors, dict) else tensors
            if not isinstance(tensors, dict) or not all(torch.is_tensor(v) for v in tensors.values()):
                raise ValueError("not a state dict of tensors")
    except Exception as e:  # safetensors' SafetensorError (truncated, not safetensors), pickle errors, an OSError
        raise ModelError(f"{path}: not a readable weights file ({' '.join(str(e).split())[:200]}); export the "
                         f"model again") from None
    check_finite(tensors, str(path))
    return tensors
