"""Class scoring on top of the image tower.

The text tower is frozen, so the class-text embeddings T_c are computed once per class
set (``encode_class_texts``) and kept as a buffer: a training step runs the image tower
only. ``TextHead`` returns cosine similarities S(I_x, T_c) (the losses divide by tau);
``LinearHead`` is the ERM baseline of Eq. 1, initialised from the zero-shot weights.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ImageClassifier", "LinearHead", "TextHead", "batch_norms", "encode_class_texts", "prompt_texts"]


def prompt_texts(class_name: str, templates: Sequence[str]) -> list[str]:
    return [t.format(class_name) for t in templates]


@torch.no_grad()
def encode_class_texts(model: nn.Module, tokenizer: Callable, class_names: Sequence[str],
                       templates: Sequence[str], *, batch_size: int = 256) -> torch.Tensor:
    """Normalised class embeddings (C, D): per class, the renormalised mean over templates."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = [s for name in class_names for s in prompt_texts(name, templates)]
    chunks = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[i:i + batch_size]).to(device)
        chunks.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    emb = torch.cat(chunks).view(len(class_names), len(templates), -1).mean(dim=1)
    model.train(was_training)
    return F.normalize(emb, dim=-1)


class TextHead(nn.Module):
    """Cosine similarity with fixed class-text embeddings: (B, D) -> (B, C)."""

    def __init__(self, text_features: torch.Tensor):
        super().__init__()
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1))

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return image_features @ self.text_features.to(image_features.dtype).T


class LinearHead(nn.Module):
    """Linear classifier on normalised image features (Eq. 1), zero-shot or random init."""

    def __init__(self, text_features: torch.Tensor, temperature: float, init: str = "zeroshot"):
        super().__init__()
        c, d = text_features.shape
        self.linear = nn.Linear(d, c)
        with torch.no_grad():
            if init == "zeroshot":
                self.linear.weight.copy_(F.normalize(text_features.float(), dim=-1) / temperature)
                self.linear.bias.zero_()
            elif init != "random":
                raise ValueError(f"unknown head init {init!r}")

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear(image_features)


def batch_norms(module: nn.Module) -> list[nn.Module]:
    """The layers that keep running statistics (BatchNorm and its subclasses, e.g. timm's BatchNormAct2d)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class ImageClassifier(nn.Module):
    """Image tower + head: what one training step runs (no text tower).

    With ``frozen_norms`` the tower's BatchNorm layers stay in eval mode even in ``train()``
    (the official implementation trains with ``model.eval()``): they normalise with their
    running statistics and never update them; their affine weights still get gradients."""

    def __init__(self, visual: nn.Module, head: nn.Module, frozen_norms: bool = False):
        super().__init__()
        self.visual = visual
        self.head = head
        self.frozen_norms = frozen_norms

    def train(self, mode: bool = True) -> "ImageClassifier":
        super().train(mode)
        if mode and self.frozen_norms:
            for m in batch_norms(self.visual):
                m.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(images), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
