"""accuracies(): accuracy per split, base/new/H, against a direct per-image argmax."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clipood.data.folder import ImageIndex
from clipood.data.splits import EvalSet
from clipood.evaluation import ClassWeights, accuracies, harmonic_mean
from clipood.model.heads import LinearHead
from clipood.training.experiment import Experiment

C, D, N = 6, 8, 90


def make_index(seed: int = 0) -> ImageIndex:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (N,), generator=g).tolist()
    domains = [i % 3 for i in range(N)]
    return ImageIndex(root=Path("/data"), domains=["a", "b", "c"], class_folders=[f"c{k}" for k in range(C)],
                      class_names=[f"c{k}" for k in range(C)], paths=[f"/data/{i}.png" for i in range(N)],
                      labels=labels, domain_ids=domains)


def features_for(index: ImageIndex, text: torch.Tensor, seed: int, keep: float = 0.9):
    """Features near their class text (so accuracy is neither 0 nor 1), for a shuffled subset
    of the images (the unreadable ones are left out, as encode_images does)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(N, generator=g)[: int(N * keep)]
    labels = torch.as_tensor(index.labels)[ids]
    f = text[labels] + 0.9 * torch.randn(len(ids), D, generator=g)
    return F.normalize(f, dim=-1), ids


def evals_of(index: ImageIndex) -> list[EvalSet]:
    by_domain = {d: [i for i in range(N) if index.domain_ids[i] == d] for d in range(3)}
    return [EvalSet("a", "in", "test", by_domain[0]), EvalSet("b", "out", "val", by_domain[1][::2]),
            EvalSet("c", "out", "oracle", by_domain[2])]


def direct_accuracy(features, ids, index, indices, score, classes=None):
    """For each image of the set that was encoded and whose label is in ``classes``: is the
    best-scoring class among ``classes`` its label?"""
    classes = list(range(C)) if classes is None else list(classes)
    row = {int(i): r for r, i in enumerate(ids)}
    correct = total = 0
    for i in indices:
        if i not in row or index.labels[i] not in classes:
            continue
        f = features[row[i]]
        best = max(classes, key=lambda c: score(f, c))
        correct += best == index.labels[i]
        total += 1
    return (correct / total if total else float("nan")), total


def cos_score(text):
    return lambda f, c: float(sum(f[k] * text[c, k] for k in range(D)))


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_accuracy_is_the_argmax_accuracy(seed):
    index = make_index(seed)
    text = F.normalize(torch.randn(C, D, generator=torch.Generator().manual_seed(seed + 10)), dim=-1)
    feats, ids = features_for(index, text, seed)
    evals = evals_of(index)
    out = accuracies(feats, ids, index, evals, ClassWeights(text))
    assert list(out) == ["a/in", "b/out", "c/out"]
    for es in evals:
        acc, n = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text))
        r = out[es.name]
        assert (r["domain"], r["split"], r["role"], r["n"]) == (es.domain, es.split, es.role, n)
        assert r["accuracy"] == pytest.approx(acc, abs=1e-12)
        assert "base" not in r
    assert 0 < out["a/in"]["accuracy"] < 1


@pytest.mark.parametrize("seed", (0, 3))
def test_base_new_and_harmonic_mean(seed):
    index = make_index(seed)
    text = F.normalize(torch.randn(C, D, generator=torch.Generator().manual_seed(seed)), dim=-1)
    feats, ids = features_for(index, text, seed + 1)
    base, new = [0, 1, 2], [3, 4, 5]
    evals = evals_of(index)
    out = accuracies(feats, ids, index, evals, ClassWeights(text), base=base, new=new)
    for es in evals:
        r = out[es.name]
        b, nb = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text), base)
        w, nw = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text), new)
        a, n = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text))
        assert (r["n_base"], r["n_new"], r["n"]) == (nb, nw, n) and nb + nw == n
        assert r["base"] == pytest.approx(b, abs=1e-12) and r["new"] == pytest.approx(w, abs=1e-12)
        assert r["H"] == pytest.approx(2 * b * w / (b + w), abs=1e-12)
        assert r["accuracy"] == pytest.approx(a, abs=1e-12)
    # scoring among a subset can only help: base accuracy >= that of base images among all classes
    r = out["a/in"]
    all_on_base, _ = direct_accuracy(feats, ids.tolist(), index,
                                     [i for i in evals[0].indices if index.labels[i] in base], cos_score(text))
    assert r["base"] >= all_on_base


def test_uneven_class_subsets():
    """Subsets need not be halves or contiguous; an empty subset gives nan and n = 0."""
    index = make_index(4)
    text = F.normalize(torch.randn(C, D, generator=torch.Generator().manual_seed(4)), dim=-1)
    feats, ids = features_for(index, text, 4)
    es = EvalSet("a", "in", "test", list(range(N)))
    base, new = [5, 0], [2, 4, 3, 1]
    r = accuracies(feats, ids, index, [es], ClassWeights(text), base=base, new=new)["a/in"]
    b, _ = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text), base)
    w, _ = direct_accuracy(feats, ids.tolist(), index, es.indices, cos_score(text), new)
    assert (r["base"], r["new"]) == (pytest.approx(b), pytest.approx(w))
    only_base = [i for i in range(N) if index.labels[i] in base]
    r = accuracies(feats, ids, index, [EvalSet("a", "in", "test", only_base)], ClassWeights(text),
                 base=base, new=new)["a/in"]
    assert r["n_new"] == 0 and math.isnan(r["new"]) and math.isnan(r["H"])
    assert r["n_base"] == r["n"] > 0


def test_empty_eval_set():
    index = make_index(5)
    text = F.normalize(torch.randn(C, D), dim=-1)
    feats, ids = features_for(index, text, 5)
    missing = sorted(set(range(N)) - set(ids.tolist()))
    r = accuracies(feats, ids, index, [EvalSet("a", "in", "test", missing)], ClassWeights(text))["a/in"]
    assert r["n"] == 0 and math.isnan(r["accuracy"])


def test_harmonic_mean():
    assert harmonic_mean(0.8, 0.6) == pytest.approx(2 * 0.8 * 0.6 / 1.4)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(1.0, 0.0) == 0.0


def test_linear_head_weights_score_like_the_head():
    """ClassWeights with a bias: accuracies() ranks classes exactly as the trained head does."""
    index = make_index(6)
    g = torch.Generator().manual_seed(6)
    text = F.normalize(torch.randn(C, D, generator=g), dim=-1)
    head = LinearHead(text, temperature=0.01, init="random")
    with torch.no_grad():
        head.linear.bias.copy_(torch.randn(C, generator=g) * 5)  # large enough to change predictions
    feats, ids = features_for(index, text, 6)
    weights = ClassWeights(head.linear.weight.detach(), head.linear.bias.detach())
    torch.testing.assert_close(weights.scores(feats), head(feats).detach())
    es = EvalSet("a", "in", "test", list(range(N)))
    r = accuracies(feats, ids, index, [es], weights)["a/in"]
    acc, _ = direct_accuracy(feats, ids.tolist(), index, es.indices,
                             lambda f, c: float(head(f[None]).detach()[0, c]))
    assert r["accuracy"] == pytest.approx(acc, abs=1e-12)
    # the bias is part of the scores: without it some predictions change
    w = head.linear.weight.detach()
    assert (head(feats).detach().argmax(1) != (feats @ w.T).argmax(1)).any()
    no_bias = accuracies(feats, ids, index, [es], ClassWeights(w))["a/in"]
    acc, _ = direct_accuracy(feats, ids.tolist(), index, es.indices, lambda f, c: float(f @ w[c]))
    assert no_bias["accuracy"] == pytest.approx(acc, abs=1e-12)


def test_experiment_class_weights_for_a_base_to_new_linear_head():
    """Trained (base) classes score with the head; the others fall back to zero-shot text / tau."""
    g = torch.Generator().manual_seed(7)
    tau = 0.05
    text = F.normalize(torch.randn(C, D, generator=g), dim=-1)
    base = [0, 1, 2]
    head = LinearHead(text[base], temperature=tau, init="random")
    with torch.no_grad():
        head.linear.bias.copy_(torch.randn(len(base), generator=g))
    exp = SimpleNamespace(classifier=SimpleNamespace(head=head), temperature=tau, text_features=text,
                          splits=SimpleNamespace(train_classes=base))
    weights = Experiment.class_weights(exp)
    feats = F.normalize(torch.randn(20, D, generator=g), dim=-1)
    s = weights.scores(feats)
    torch.testing.assert_close(s[:, base], head(feats).detach())
    torch.testing.assert_close(s[:, 3:], feats @ text[3:].T / tau)
