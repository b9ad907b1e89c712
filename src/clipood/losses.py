"""Training objectives on cosine similarities between image and class-text embeddings.

All losses take ``cos`` = S(I_x, T_c), the (B, C) cosine similarities of the batch's
normalised image embeddings with the C normalised class-text embeddings, so that the
image embedding is computed once and the class texts never per step.

* metric softmax (Eq. 2): cross-entropy over S / tau.
* Margin Metric Softmax (Eq. 3-4): every other class c gets the adaptive margin
  lambda * D(T_y, T_c), D = 1 - S(T_y, T_c), added inside the softmax.
* fixed margin (Fig. 5 ablation): the same with a constant margin lambda for c != y.
* focal MMS: MMS's per-image cross-entropy weighted by (1 - p_y)^gamma (Lin et al., 2017).
* CORAL (Sun & Saenko, 2016; DomainBed's ``CORAL``): the metric softmax plus gamma times the
  mean, over pairs of training domains in the batch, of the squared differences of their
  image features' means and covariances.
* contrastive (FLYP, Goyal et al., CVPR 2023): CLIP's symmetric contrastive loss between the
  batch's images and their classes' prompts, the classes' text embeddings recomputed by a
  trainable text tower (``--tuning both-towers``).
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

__all__ = ["CORAL_GAMMA", "ContrastiveLoss", "CoralLoss", "FOCAL_GAMMA", "FocalMetricSoftmaxLoss", "LAMBDA", "LOSSES",
           "LogitCrossEntropy", "Loss", "MetricSoftmaxLoss", "build_loss", "class_distances", "coral_distance",
           "fixed_margin_softmax", "margin_metric_softmax"]


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


def coral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CORAL's distance of two feature sets (n, D), (m, D): mean squared difference of their means plus that of
    their (unbiased) covariances, as DomainBed's ``CORAL.mmd``."""
    mx, my = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    cx, cy = x - mx, y - my
    cov_x, cov_y = cx.T @ cx / (len(x) - 1), cy.T @ cy / (len(y) - 1)
    return (mx - my).pow(2).mean() + (cov_x - cov_y).pow(2).mean()


class CoralLoss(MetricSoftmaxLoss):
    """Metric softmax (Eq. 2) + gamma * the mean CORAL distance over pairs of the batch's domains, on the image
    tower's features before normalisation (DomainBed's featurizer output). The penalty is of the whole batch, so
    the loss needs it in one piece (``Loss.whole_batch``)."""

    def __init__(self, temperature: float, gamma: float):
        super().__init__(temperature)
        self.gamma = float(gamma)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor, reduction: str = "mean", *,
                features: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        ce = super().forward(cos, labels, reduction)
        feats = features.to(torch.promote_types(features.dtype, torch.float32))
        groups = [feats[domains == d] for d in torch.unique(domains)]
        pairs = [(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))]
        if not pairs:
            return ce
        penalty = sum(coral_distance(groups[i], groups[j]) for i, j in pairs) / len(pairs)
        return ce + self.gamma * penalty * (len(labels) if reduction == "sum" else 1)


class ContrastiveLoss(nn.Module):
    """FLYP: CLIP's contrastive loss on the batch. Image i's positive is its own class prompt T_(y_i), its
    negatives the prompts of the other images' classes (a class twice in a batch is twice a column, as FLYP
    samples one prompt per image): logits S(I_i, T_(y_j)) / tau, cross-entropy over j and over i, averaged."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        logits = cos.to(torch.promote_types(cos.dtype, torch.float32))[:, labels] / self.temperature  # (B, B)
        target = torch.arange(len(labels), device=cos.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss * len(labels) if reduction == "sum" else loss


@dataclass(frozen=True)
class Loss(Entry):
    """A training objective (--loss): ``build(text_features, temperature, **params)`` makes it for the training
    classes' text embeddings (C, D) and tau. ``head``: what it scores, 'text' (cosine similarities to the class
    texts) or 'linear' (a linear head's logits, which the model then gets). ``inputs``: what else its forward
    takes by keyword, 'features' (the image tower's output, before normalisation) and 'domains' (each image's
    domain id). ``whole_batch``: its value is not a sum over images (a penalty between domains, a contrastive
    loss), so the batch is neither split into micro-batches nor across processes."""

    build: Callable[..., nn.Module] = None
    head: str = "text"
    inputs: tuple[str, ...] = ()
    whole_batch: bool = False


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


CORAL_GAMMA = Param("coral_gamma", 1.0, "gamma, the weight of CORAL's penalty on the differences of the training "
                    "domains' feature means and covariances (DomainBed: 1, searched in 10^[-1, 1]).",
                    within=Range(0, 1e4, name="gamma"), label="gamma (CORAL penalty weight)")
LOSSES.add(Loss("coral", "metric softmax plus CORAL's penalty between the training domains' feature statistics "
                         "(DomainBed)", (CORAL_GAMMA,), inputs=("features", "domains"), whole_batch=True,
                build=lambda text, tau, coral_gamma: CoralLoss(tau, coral_gamma)))
LOSSES.add(Loss("contrastive", "CLIP's contrastive loss between the batch's images and their class prompts (FLYP; "
                               "with --tuning both-towers)", build=lambda text, tau: ContrastiveLoss(tau),
                whole_batch=True))


def build_loss(name: str, text_features: torch.Tensor, temperature: float, **params) -> nn.Module:
    """The loss named ``name`` for these class texts and tau, with its parameters (by name; defaults for the
    others, e.g. ``margin_lambda=0.3``). 'linear' scores a head's logits: no temperature."""
    return LOSSES[name].build(text_features, temperature, **LOSSES.arguments(name, params))
