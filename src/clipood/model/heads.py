"""Class scoring on top of the image tower.

The text tower is frozen, so the class-text embeddings T_c are computed once per class
set (``encode_class_texts``) and kept as a buffer: a training step runs the image tower
only. ``TextHead`` returns cosine similarities S(I_x, T_c) (the losses divide by tau);
``LinearHead`` is the ERM baseline of Eq. 1, initialised from the zero-shot weights.
``TowerTextHead`` is the exception for methods that train the text tower too (FLYP): it
encodes the class prompts at every forward, with gradients.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ImageClassifier", "LinearHead", "TextHead", "TowerTextHead", "batch_norms", "encode_class_texts",
           "text_parameters"]


@torch.no_grad()
def encode_class_texts(model: nn.Module, tokenizer: Callable, class_names: Sequence[str],
                       templates: Sequence[str], *, batch_size: int = 256) -> torch.Tensor:
    """Normalised class embeddings (C, D): per class, the renormalised mean over templates.

    open_clip's ``build_zero_shot_classifier`` does the encoding (its template ensembling, as
    open_clip_train evaluates zero-shot), about ``batch_size`` texts per forward pass."""
    from open_clip import build_zero_shot_classifier
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    weights = build_zero_shot_classifier(model, tokenizer, list(class_names), list(templates),
                                         num_classes_per_batch=max(1, batch_size // len(templates)), device=device)
    model.train(was_training)
    return F.normalize(weights.T.float(), dim=-1)


class TextHead(nn.Module):
    """Cosine similarity with fixed class-text embeddings: (B, D) -> (B, C)."""

    def __init__(self, text_features: torch.Tensor):
        super().__init__()
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1))

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return image_features @ self.text_features.to(image_features.dtype).T


def text_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The text tower's parameters: everything of the CLIP model but the image tower and the logit scale/bias
    (tau stays the model's; FLYP learns it, clipood keeps it fixed so every method shares one tau)."""
    skip = {"logit_scale", "logit_bias"}
    return [p for n, p in model.named_parameters() if not n.startswith("visual.") and n not in skip]


class TowerTextHead(nn.Module):
    """Cosine similarity with class texts encoded by the text tower at every forward (the renormalised mean over
    the templates, as ``encode_class_texts``): the head of methods that train the text tower (FLYP). The CLIP
    model is held outside the module tree (its image tower is the classifier's own ``visual``); the text
    parameters that train are handed to the optimiser and the average by the caller."""

    def __init__(self, model: nn.Module, tokenizer: Callable, class_names: Sequence[str], templates: Sequence[str]):
        super().__init__()
        self._clip = [model]
        self.num_templates = len(templates)
        tokens = tokenizer([t.format(c) for c in class_names for t in templates])
        self.register_buffer("tokens", tokens.to(next(model.parameters()).device), persistent=False)

    def text_features(self) -> torch.Tensor:
        t = F.normalize(self._clip[0].encode_text(self.tokens).float(), dim=-1)
        t = t.view(-1, self.num_templates, t.shape[-1]).mean(1)
        return F.normalize(t, dim=-1)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return image_features @ self.text_features().to(image_features.dtype).T


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

    def forward(self, images: torch.Tensor, with_features: bool = False):
        """Class scores; with ``with_features`` also the tower's output before normalisation (CORAL's input),
        in one call so that a DDP-wrapped classifier sees one forward."""
        raw = self.visual(images)
        scores = self.head(F.normalize(raw, dim=-1))
        return (scores, raw) if with_features else scores
