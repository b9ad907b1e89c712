"""Training objectives on cosine similarities between image and class-text embeddings.

All losses take ``cos`` = S(I_x, T_c), the (B, C) cosine similarities of the batch's
normalised image embeddings with the C normalised class-text embeddings, so that the
image embedding is computed once and the class texts never per step.

* metric softmax (Eq. 2): cross-entropy over S / tau.
* Margin Metric Softmax (Eq. 3-4): every other class c gets the adaptive margin
  lambda * D(T_y, T_c), D = 1 - S(T_y, T_c), added inside the softmax.
* fixed margin (Fig. 5 ablation): the same with a constant margin lambda for c != y.
* focal MMS: MMS's per-image cross-entropy weighted by (1 - p_y)^gamma (Lin et al., 2017).
* linear (Eq. 1, the ERM baseline) is a cross-entropy on a linear head's logits
  (``LogitCrossEntropy``); the head lives in ``model.heads``.

``LOSSES`` is the registry (--loss): each entry declares the parameters it reads, from which the
config's ``loss`` section, --help and the docs are made (``registry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Entry, Param, Range, Registry

__all__ = ["FOCAL_GAMMA", "FocalMetricSoftmaxLoss", "LAMBDA", "LOSSES", "LogitCrossEntropy", "Loss",
           "MetricSoftmaxLoss", "build_loss", "class_distances", "fixed_margin_softmax", "margin_metric_softmax"]


def class_distances(text_features: torch.Tensor) -> torch.Tensor:
    """D(T_i, T_j) = 1 - S(T_i, T_j) for normalised class texts (C, D) -> (C, C); D_ii = 0."""
    t = F.normalize(text_features.to(torch.promote_types(text_features.dtype, torch.float32)), dim=-1)
    d = 1.0 - t @ t.T
    d.fill_diagonal_(0.0)
    return d


class MetricSoftmaxLoss(nn.Module):
    """Cross-entropy of (S(I, T_c) + margin[y, c]) / tau; ``margins`` None gives Eq. 2.

    The (C, C) margin matrix is computed once per class set and stored as a buffer, so a
    step costs one row gather and one add over the plain metric softmax.
    """

    def __init__(self, temperature: float, margins: torch.Tensor | None = None):
        super().__init__()
        self.temperature = float(temperature)
        self.register_buffer("margins", margins, persistent=False)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """``reduction='sum'`` lets gradient accumulation and DDP normalise by the global batch."""
        logits = cos.to(torch.promote_types(cos.dtype, torch.float32))  # fp16/bf16 -> fp32; fp64 stays
        if self.margins is not None:
            logits = logits + self.margins[labels]
        return F.cross_entropy(logits / self.temperature, labels, reduction=reduction)


def margin_metric_softmax(text_features: torch.Tensor, margin_lambda: float, temperature: float) -> MetricSoftmaxLoss:
    """MMS (Eq. 3-4): margin lambda * (1 - S(T_y, T_c)); lambda = 0 is exactly Eq. 2."""
    margins = None if margin_lambda == 0 else margin_lambda * class_distances(text_features)
    return MetricSoftmaxLoss(temperature, margins)


def fixed_margin_softmax(num_classes: int, margin_lambda: float, temperature: float) -> MetricSoftmaxLoss:
    """Fig. 5 ablation: the same margin lambda for every class other than the label."""
    margins = torch.full((num_classes, num_classes), float(margin_lambda))
    margins.fill_diagonal_(0.0)
    return MetricSoftmaxLoss(temperature, margins)


class FocalMetricSoftmaxLoss(MetricSoftmaxLoss):
    """Focal MMS: each image's MMS cross-entropy -log p_y weighted by (1 - p_y)^gamma, p_y the probability of
    its label under the margins (the focal loss of Lin et al., ICCV 2017, on Eq. 3); gamma = 0 is MMS itself."""

    def __init__(self, temperature: float, margins: torch.Tensor | None, gamma: float):
        super().__init__(temperature, margins)
        self.gamma = float(gamma)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.gamma == 0:
            return super().forward(cos, labels, reduction)
        logits = cos.to(torch.promote_types(cos.dtype, torch.float32))
        if self.margins is not None:
            logits = logits + self.margins[labels]
        log_p = F.log_softmax(logits / self.temperature, dim=-1).gather(1, labels[:, None]).squeeze(1)
        weight = (1.0 - log_p.exp()).clamp_min(0.0) ** self.gamma  # (1 - p_y)^gamma
        losses = weight * -log_p
        return losses.sum() if reduction == "sum" else losses.mean() if reduction == "mean" else losses


class LogitCrossEntropy(nn.Module):
    """Eq. 1, the ERM baseline: cross-entropy on a linear head's logits (no cosine, no temperature)."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels,
                               reduction=reduction)


@dataclass(frozen=True)
class Loss(Entry):
    """A training objective (--loss): ``build(text_features, temperature, **params)`` makes it for the training
    classes' text embeddings (C, D) and tau. ``head``: what it scores, 'text' (cosine similarities to the class
    texts) or 'linear' (a linear head's logits, which the model then gets)."""

    build: Callable[..., nn.Module] = None
    head: str = "text"


# The losses by name (--loss), in the order --help and the docs list them.
LOSSES: Registry[Loss] = Registry("loss", "loss", "--loss")

LAMBDA = Param("margin_lambda", 0.3, "lambda, the margin scale of MMS (Eq. 4). Paper: 0.3.", flag="lambda",
               within=Range(0, 10, name="lambda", note="paper: 0.1-0.3; 0 gives plain metric softmax"),
               label="lambda (MMS margin scale, Eq. 4)")

LOSSES.add(Loss("mms", "Margin Metric Softmax (Eq. 3-4)", (LAMBDA,),
                build=lambda text, tau, margin_lambda: margin_metric_softmax(text, margin_lambda, tau)))
LOSSES.add(Loss("metric_softmax", "cosine logits, plain cross-entropy (Eq. 2)",
                build=lambda text, tau: MetricSoftmaxLoss(tau)))
LOSSES.add(Loss("linear", "a linear head on the image features, cross-entropy on its logits (Eq. 1: the ERM "
                          "baseline)", build=lambda text, tau: LogitCrossEntropy(), head="linear"))
LOSSES.add(Loss("fixed_margin", "MMS with a constant margin lambda for every other class (Fig. 5 ablation)",
                (LAMBDA,), build=lambda text, tau, margin_lambda: fixed_margin_softmax(text.shape[0], margin_lambda,
                                                                                       tau)))


FOCAL_GAMMA = Param("focal_gamma", 2.0, "gamma of focal MMS: each image's MMS cross-entropy is weighted by "
                    "(1 - p_y)^gamma, p_y the probability of its label (Lin et al. 2017: 2); 0 is MMS itself.",
                    within=Range(0, 10, name="gamma"), label="gamma (focal MMS weight (1 - p_y)^gamma)")
LOSSES.add(Loss("mms-focal", "focal MMS: each image's MMS cross-entropy weighted by (1 - p_y)^gamma",
                (LAMBDA, FOCAL_GAMMA), build=lambda text, tau, margin_lambda, focal_gamma: FocalMetricSoftmaxLoss(
                    tau, margin_metric_softmax(text, margin_lambda, tau).margins, focal_gamma)))


def build_loss(name: str, text_features: torch.Tensor, temperature: float, **params) -> nn.Module:
    """The loss named ``name`` for these class texts and tau, with its parameters (by name; defaults for the
    others, e.g. ``margin_lambda=0.3``). 'linear' scores a head's logits: no temperature."""
    return LOSSES[name].build(text_features, temperature, **LOSSES.arguments(name, params))
