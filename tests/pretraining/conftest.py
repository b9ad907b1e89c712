"""What the pretraining tests share: CLIP's loss written out, the independent computation they check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


def _clip_loss(image_features, text_features, scale) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, written out (not open_clip's ClipLoss)."""
    logits = scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@pytest.fixture
def clip_loss():
    return _clip_loss
