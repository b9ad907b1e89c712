"""Heads on the image features: cosine to frozen class texts, the linear ERM head, frozen BatchNorm."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipood.model.heads import ImageClassifier, LinearHead, TextHead, batch_norms


def test_text_head_is_the_cosine_similarity():
    g = torch.Generator().manual_seed(0)
    text, feats = torch.randn(5, 8, generator=g), F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    torch.testing.assert_close(TextHead(text)(feats), feats @ F.normalize(text, dim=-1).T)


def test_linear_head_starts_as_the_zero_shot_classifier_over_tau():
    g = torch.Generator().manual_seed(1)
    text, feats = torch.randn(4, 6, generator=g), F.normalize(torch.randn(2, 6, generator=g), dim=-1)
    head = LinearHead(text, temperature=0.05)
    torch.testing.assert_close(head(feats), feats @ F.normalize(text, dim=-1).T / 0.05)


def test_frozen_norms_stay_in_eval_mode_in_train():
    tower = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(8))
    for frozen in (True, False):
        clf = ImageClassifier(tower, TextHead(torch.randn(3, 8)), frozen_norms=frozen).train()
        (bn,) = batch_norms(clf.visual)
        assert bn.training is (not frozen) and clf.visual.training
        before = bn.running_mean.clone()
        clf(torch.randn(2, 3, 8, 8))
        assert torch.equal(bn.running_mean, before) is frozen
