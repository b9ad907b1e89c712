"""The losses against a direct float64 evaluation of the paper's equations.

MMS (Eq. 3-4): L = -log exp(S(I,T_y)/tau) / sum_c exp((S(I,T_c) + lambda D(T_y,T_c))/tau),
D(T_y,T_c) = 1 - S(T_y,T_c) (0 for c = y), S the cosine similarity. The reference below
is written from that equation with explicit loops and a hand-written log-sum-exp, from
the raw (unnormalised) embeddings, so it shares nothing with the library code.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipood.errors import ConfigError
from clipood.losses import (
    LOSSES,
    MetricSoftmaxLoss,
    build_loss,
    class_distances,
    fixed_margin_softmax,
    margin_metric_softmax,
)

LAMBDAS = (0.0, 0.1, 0.3, 1.0)
TAUS = (0.01, 0.07, 1.0)
SHAPES = ((1, 2), (4, 2), (6, 5), (3, 50))  # (batch B, classes C)
DIM = 8


# ------------------------------------------------------------------ the reference


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = a[0] * b[0]
    for k in range(1, a.shape[0]):
        out = out + a[k] * b[k]
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _dot(a, b) / (torch.sqrt(_dot(a, a)) * torch.sqrt(_dot(b, b)))


def _logsumexp(values: list) -> torch.Tensor:
    m = max(float(v.detach()) for v in values)
    total = sum(torch.exp(v - m) for v in values)
    return m + torch.log(total)


def direct_loss(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, lam: float, tau: float,
                margin: str = "adaptive") -> torch.Tensor:
    """Mean over the batch of Eq. 3-4 (margin='adaptive') or the fixed-margin ablation, in float64."""
    image, text = image.double(), text.double()
    B, C = image.shape[0], text.shape[0]
    losses = []
    for i in range(B):
        y = int(labels[i])
        z = []
        for c in range(C):
            s = _cosine(image[i], text[c])
            if c == y:
                d = 0.0
            elif margin == "adaptive":
                d = 1.0 - _cosine(text[y], text[c])
            else:
                d = 1.0
            z.append((s + lam * d) / tau)
        losses.append(_logsumexp(z) - _cosine(image[i], text[y]) / tau)
    return sum(losses) / B


def _data(B: int, C: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    image = (torch.randn(B, DIM, generator=g) * 3 + 0.5).to(dtype)  # deliberately not normalised
    text = (torch.randn(C, DIM, generator=g) * 2 - 0.3).to(dtype)
    labels = torch.randint(0, C, (B,), generator=g)
    return image, text, labels


def _cos(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """S(I, T_c) as the model computes it (TextHead: normalised features, one matmul)."""
    return F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T


# ------------------------------------------------------------------------- tests


@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_mms_matches_the_equation(lam, tau, B, C):
    image, text, labels = _data(B, C, seed=B * 100 + C)
    expected = direct_loss(image, text, labels, lam, tau)
    loss = margin_metric_softmax(text, lam, tau)(_cos(image, text), labels)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("tau", (0.01, 1.0))
def test_mms_in_float32_as_training_runs_it(tau, B, C):
    """The training path (fp32 features) agrees with the float64 equation to fp32 rounding."""
    image, text, labels = _data(B, C, seed=7 + C, dtype=torch.float32)
    expected = direct_loss(image, text, labels, 0.3, tau)
    loss = margin_metric_softmax(text, 0.3, tau)(_cos(image, text), labels)
    assert loss.dtype == torch.float32
    # cos carries ~1e-7 absolute error, amplified by 1/tau in the logits.
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=5e-7 / tau)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("tau", TAUS)
def test_lambda_zero_is_exactly_metric_softmax(tau, B, C, dtype):
    """lambda = 0 must be Eq. 2 itself (no margin tensor added), so bit-for-bit equal."""
    image, text, labels = _data(B, C, seed=3, dtype=dtype)
    cos = _cos(image, text)
    reference = F.cross_entropy(cos / tau, labels)
    assert torch.equal(margin_metric_softmax(text, 0.0, tau)(cos, labels), reference)
    assert torch.equal(build_loss("metric_softmax", text, tau)(cos, labels), reference)
    assert torch.equal(MetricSoftmaxLoss(tau)(cos, labels), reference)


def test_low_precision_cosines_are_computed_in_fp32():
    image, text, labels = _data(5, 6, seed=11, dtype=torch.float32)
    cos = _cos(image, text)
    loss_fn = margin_metric_softmax(text, 0.3, 0.01)
    low = loss_fn(cos.bfloat16(), labels)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, loss_fn(cos.bfloat16().float(), labels), rtol=0, atol=0)


@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lam", (0.1, 0.3, 1.0))
def test_fixed_margin_matches_its_formula(lam, tau, B, C):
    image, text, labels = _data(B, C, seed=5 * C + B)
    expected = direct_loss(image, text, labels, lam, tau, margin="fixed")
    cos = _cos(image, text)
    torch.testing.assert_close(fixed_margin_softmax(C, lam, tau)(cos, labels), expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(build_loss("fixed_margin", text, tau, margin_lambda=lam)(cos, labels), expected,
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("C", (2, 5, 50))
def test_class_distances(C):
    _, text, _ = _data(1, C, seed=C)
    d = class_distances(text)
    assert d.shape == (C, C) and d.dtype == torch.float64
    for i in range(C):
        assert d[i, i] == 0.0
        for j in range(C):
            if i != j:
                assert math.isclose(float(d[i, j]), 1.0 - float(_cosine(text[i], text[j])), rel_tol=1e-12,
                                    abs_tol=1e-12)
    torch.testing.assert_close(d, d.T, rtol=0, atol=1e-15)  # a matmul need not be bitwise symmetric
    assert torch.all(d >= 0) and torch.all(d <= 2)
    # fp32 text features (what encode_class_texts returns) give fp32 distances
    assert class_distances(text.float()).dtype == torch.float32


def test_margin_grows_the_loss_and_zero_lambda_has_no_buffer():
    """The margin only ever adds to the non-target logits: the loss increases with lambda."""
    image, text, labels = _data(6, 5, seed=21)
    cos = _cos(image, text)
    values = [float(margin_metric_softmax(text, lam, 0.07)(cos, labels)) for lam in LAMBDAS]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert margin_metric_softmax(text, 0.0, 0.07).margins is None
    assert "margins" not in margin_metric_softmax(text, 0.3, 0.07).state_dict()  # rebuilt, never saved


@pytest.mark.parametrize("lam,tau", [(0.0, 0.07), (0.3, 0.01), (1.0, 1.0)])
@pytest.mark.parametrize("name", ("mms", "fixed_margin"))
def test_gradcheck_in_float64(name, lam, tau):
    image, text, labels = _data(3, 4, seed=13)
    loss_fn = build_loss(name, text, tau, margin_lambda=lam)
    image = image.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss_fn(_cos(x, text), labels), (image,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("B,C", ((1, 2), (4, 7)))
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_gradient_matches_the_equation(lam, tau, B, C):
    image, text, labels = _data(B, C, seed=17 + B)
    x1 = image.clone().requires_grad_(True)
    margin_metric_softmax(text, lam, tau)(_cos(x1, text), labels).backward()
    x2 = image.clone().requires_grad_(True)
    direct_loss(x2, text, labels, lam, tau).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)


def test_linear_loss_is_cross_entropy_on_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g) * 10
    labels = torch.randint(0, 4, (5,), generator=g)
    text = torch.randn(4, DIM, generator=g)
    loss = build_loss("linear", text, 0.01)(logits, labels)
    assert torch.equal(loss, F.cross_entropy(logits, labels))


def test_mms_registry_entry_is_the_mms_loss():
    image, text, labels = _data(4, 6, seed=2)
    cos = _cos(image, text)
    assert torch.equal(build_loss("mms", text, 0.01, margin_lambda=0.3)(cos, labels),
                       margin_metric_softmax(text, 0.3, 0.01)(cos, labels))


def test_unknown_loss_name_and_parameter():
    with pytest.raises(ConfigError, match=r"--loss: unknown loss .hinge..*mms.*metric_softmax.*linear.*fixed_margin"):
        build_loss("hinge", torch.randn(3, DIM), 0.01)
    assert {"mms", "metric_softmax", "fixed_margin", "linear"} <= set(LOSSES)
    with pytest.raises(ConfigError, match=r"--loss metric_softmax: takes no parameter 'margin_lambda'"):
        build_loss("metric_softmax", torch.randn(3, DIM), 0.01, margin_lambda=0.3)  # never ignored


def test_registry_declares_each_parameter_once():
    """A parameter two losses read is one declaration (one flag, help and range), and each loss's parameters
    are exactly the options of the config's loss section that apply with it."""
    import dataclasses

    from clipood.config import LossConfig
    fields = {f.name: f for f in dataclasses.fields(LossConfig)}
    assert fields["name"].metadata["choices"] == tuple(LOSSES)
    for name, entry in LOSSES.items():
        for p in entry.params:
            applies = fields[p.name].metadata.get("applies", {}).get("loss.name", tuple(LOSSES))
            assert name in applies and fields[p.name].default == p.default
    assert LOSSES.users("margin_lambda")[:2] == ("mms", "fixed_margin")
    with pytest.raises(ValueError, match="declare it once"):
        from clipood.losses import Loss
        from clipood.registry import Param, Registry
        r = Registry("loss", "loss", "--loss")
        r.add(Loss("a", "", (Param("x", 1.0, "one"),)))
        r.add(Loss("b", "", (Param("x", 2.0, "another"),)))


@pytest.mark.parametrize("name", ("mms", "fixed_margin", "metric_softmax"))
def test_sum_reduction_is_the_sum_over_the_batch(name):
    """Gradient accumulation adds per-micro-batch sums and divides by the global batch once."""
    image, text, labels = _data(6, 5, seed=23)
    loss_fn = build_loss(name, text, 0.07, **({} if name == "metric_softmax" else {"margin_lambda": 0.3}))
    cos = _cos(image, text)
    total = loss_fn(cos, labels, reduction="sum")
    parts = loss_fn(cos[:2], labels[:2], reduction="sum") + loss_fn(cos[2:], labels[2:], reduction="sum")
    torch.testing.assert_close(total, parts, rtol=1e-12, atol=0)
    torch.testing.assert_close(total / 6, loss_fn(cos, labels), rtol=1e-12, atol=0)
    if name == "mms":
        torch.testing.assert_close(total, 6 * direct_loss(image, text, labels, 0.3, 0.07), rtol=1e-10, atol=0)


# ------------------------------------------------------------------ focal MMS (--loss mms-focal)


def direct_focal_loss(image, text, labels, lam: float, tau: float, gamma: float) -> torch.Tensor:
    """Mean over the batch of (1 - p_y)^gamma * (-log p_y), p_y = exp(z_y) / sum_c exp(z_c) with the MMS logits
    z_c = (S(I, T_c) + lambda D(T_y, T_c)) / tau, in float64 with explicit loops (no library softmax)."""
    image, text = image.double(), text.double()
    losses = []
    for i in range(image.shape[0]):
        y = int(labels[i])
        z = [(_cosine(image[i], text[c]) + (0.0 if c == y else lam * (1.0 - _cosine(text[y], text[c])))) / tau
             for c in range(text.shape[0])]
        log_p = z[y] - _logsumexp(z)
        losses.append((1.0 - torch.exp(log_p)) ** gamma * -log_p)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lam,gamma", [(0.3, 2.0), (0.1, 0.5), (0.0, 1.0), (1.0, 5.0)])
def test_focal_mms_matches_its_formula(lam, gamma, tau, B, C):
    image, text, labels = _data(B, C, seed=31 * C + B)
    loss = build_loss("mms-focal", text, tau, margin_lambda=lam, focal_gamma=gamma)(_cos(image, text), labels)
    torch.testing.assert_close(loss, direct_focal_loss(image, text, labels, lam, tau, gamma), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lam", LAMBDAS)
def test_focal_mms_with_gamma_zero_is_mms_exactly(lam):
    image, text, labels = _data(6, 5, seed=41)
    cos = _cos(image, text)
    focal = build_loss("mms-focal", text, 0.07, margin_lambda=lam, focal_gamma=0.0)
    for reduction in ("mean", "sum"):
        assert torch.equal(focal(cos, labels, reduction=reduction),
                           margin_metric_softmax(text, lam, 0.07)(cos, labels, reduction=reduction))
    # gamma > 0 weights each image by (1 - p_y)^gamma < 1: below MMS, and the sum is the sum over the batch
    focal2 = build_loss("mms-focal", text, 0.07, margin_lambda=lam, focal_gamma=2.0)
    assert float(focal2(cos, labels)) < float(margin_metric_softmax(text, lam, 0.07)(cos, labels))
    torch.testing.assert_close(focal2(cos, labels, reduction="sum"), 6 * focal2(cos, labels), rtol=1e-12, atol=0)


def test_focal_mms_gradient_in_float64():
    image, text, labels = _data(3, 4, seed=43)
    loss_fn = build_loss("mms-focal", text, 0.07, margin_lambda=0.3, focal_gamma=2.0)
    image = image.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss_fn(_cos(x, text), labels), (image,), eps=1e-6, atol=1e-5)


def test_focal_mms_is_an_option_of_the_cli_the_docs_and_sweeps(tmp_path, shapes_root):
    """From its registry entry alone: --loss mms-focal and --focal-gamma in --help and docs/configuration.md, checked
    like every option, and a sweep's grid over --focal-gamma gives one run per value for a method that reads it,
    one run for a method that does not."""
    from clipood.config import Config, irrelevant_keys, validate
    from registry_checks import assert_documented, sweep_runs
    assert_documented("mms-focal", "focal-gamma", "`loss.focal_gamma` | `--focal-gamma` | `2.0`")
    cfg = Config()
    cfg.data.root, cfg.loss.name, cfg.loss.focal_gamma = str(tmp_path), "mms-focal", 11.0
    with pytest.raises(ConfigError, match=r"--focal-gamma: 11.0 is out of range"):
        validate(cfg)
    cfg.loss.name = "mms"
    assert "loss.focal_gamma" in irrelevant_keys(cfg) and "loss.margin_lambda" not in irrelevant_keys(cfg)

    runs = sweep_runs(tmp_path, shapes_root, ["finetune", "clipood"], {"clipood": {"loss": {"name": "mms-focal"}}},
                      {"focal-gamma": [0.0, 2.0]})
    assert [(n, c.loss.focal_gamma) for n, c in runs["clipood"]] == [("d-clipood-sketch-focal-gamma0-seed0", 0.0),
                                                                     ("d-clipood-sketch-focal-gamma2-seed0", 2.0)]
    assert [n for n, _ in runs["finetune"]] == ["d-finetune-sketch-seed0"]  # metric_softmax reads no gamma: one run


# ------------------------------------------------------------------ CORAL and FLYP's contrastive loss


def _coral_reference(x: list[list[float]], y: list[list[float]]) -> float:
    """DomainBed's CORAL distance written out with Python floats: mean squared difference of the feature means
    plus that of the unbiased covariances (np.cov's definition)."""
    import numpy as np
    a, b = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    means = ((a.mean(0) - b.mean(0)) ** 2).mean()
    covs = ((np.cov(a, rowvar=False, ddof=1) - np.cov(b, rowvar=False, ddof=1)) ** 2).mean()
    return float(means + covs)


@pytest.mark.parametrize("gamma", (0.0, 1.0, 3.5))
def test_coral_penalty_equals_the_formula_on_a_hand_made_batch(gamma):
    feats = [[1.0, 0.0, 2.0], [0.5, 1.0, -1.0], [2.0, 2.0, 0.0],  # domain 0
             [0.0, -1.0, 1.0], [1.5, 0.5, 0.5], [3.0, 1.0, -2.0],  # domain 2
             [-1.0, 0.0, 0.0], [0.0, 4.0, 1.0]]                     # domain 5
    domains = torch.tensor([0, 0, 0, 2, 2, 2, 5, 5])
    g = torch.Generator().manual_seed(0)
    cos = torch.rand(8, 4, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    tau = 0.07
    loss = build_loss("coral", torch.randn(4, DIM), tau, coral_gamma=gamma)
    got = loss(cos, labels, features=torch.tensor(feats), domains=domains)
    ce = F.cross_entropy(cos.double() / tau, labels).item()
    groups = [feats[:3], feats[3:6], feats[6:]]
    penalty = (_coral_reference(groups[0], groups[1]) + _coral_reference(groups[0], groups[2])
               + _coral_reference(groups[1], groups[2])) / 3
    assert got.item() == pytest.approx(ce + gamma * penalty, rel=1e-5)
    summed = loss(cos, labels, reduction="sum", features=torch.tensor(feats), domains=domains)
    assert summed.item() == pytest.approx(8 * got.item(), rel=1e-5)


def test_coral_with_one_domain_is_the_metric_softmax():
    cos, labels = torch.rand(4, 3), torch.tensor([0, 1, 2, 0])
    loss = build_loss("coral", torch.randn(3, DIM), 0.1, coral_gamma=5.0)
    got = loss(cos, labels, features=torch.randn(4, 5), domains=torch.zeros(4, dtype=torch.long))
    assert got.item() == pytest.approx(F.cross_entropy(cos / 0.1, labels).item(), rel=1e-6)


@pytest.mark.parametrize("tau", (0.01, 0.07))
def test_contrastive_loss_equals_clips_on_the_batch_images_and_prompts(tau):
    """FLYP's loss: open_clip's ClipLoss between the batch's image embeddings and the embeddings of each image's
    class prompt (a class twice in the batch is two columns)."""
    from open_clip.loss import ClipLoss
    g = torch.Generator().manual_seed(3)
    images = F.normalize(torch.randn(6, DIM, generator=g), dim=-1)
    classes = F.normalize(torch.randn(4, DIM, generator=g), dim=-1)
    labels = torch.tensor([2, 0, 3, 2, 1, 0])
    got = build_loss("contrastive", classes, tau)(images @ classes.T, labels)
    want = ClipLoss()(images, classes[labels], logit_scale=1.0 / tau)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
