"""Evaluation protocols: DomainBed in/out splits, leave-one-domain-out roles, base-to-new, few-shot."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from clipood.data.folder import ImageIndex
from clipood.data.splits import base_new_classes, few_shot, in_out_split, make_splits
from clipood.errors import DataError

DOMAINS = ["art", "clipart", "photo"]
CLASSES = ["apple", "bike", "car", "dog", "egg"]


def make_index(counts: dict[tuple[str, str], int], domains=DOMAINS, classes=CLASSES) -> ImageIndex:
    """An index over fake paths (no files needed): counts[(domain, class)] images each."""
    paths, labels, dom = [], [], []
    for d, dname in enumerate(domains):
        for y, cname in enumerate(classes):
            for i in range(counts.get((dname, cname), 0)):
                paths.append(f"/data/{dname}/{cname}/{i:03d}.jpg")
                labels.append(y)
                dom.append(d)
    return ImageIndex(root=Path("/data"), domains=list(domains), class_folders=list(classes),
                      class_names=list(classes), paths=paths, labels=labels, domain_ids=dom)


def default_counts() -> dict[tuple[str, str], int]:
    """Uneven group sizes, from a single image up to 40."""
    sizes = [40, 10, 7, 3, 2, 1, 25, 5, 11, 4, 20, 9, 6, 15, 2]
    return {(d, c): sizes[(i * len(CLASSES) + j) % len(sizes)]
            for i, d in enumerate(DOMAINS) for j, c in enumerate(CLASSES)}


def group(index: ImageIndex, ids) -> Counter:
    return Counter((index.domain_ids[i], index.labels[i]) for i in ids)


@pytest.mark.parametrize("fraction", (0.0, 0.1, 0.2, 0.5))
def test_in_out_split_is_disjoint_covering_and_per_group(fraction):
    index = make_index(default_counts())
    ins, outs = in_out_split(index, fraction, seed=0)
    assert not set(ins) & set(outs)
    assert sorted(ins + outs) == list(range(len(index)))
    sizes, n_in, n_out = group(index, range(len(index))), group(index, ins), group(index, outs)
    for key, n in sizes.items():
        assert n_in[key] >= 1  # every class of every domain keeps training images
        if fraction == 0:
            assert n_out[key] == 0
        elif n >= 2:
            assert n_out[key] >= 1  # and has validation images
            if 1 <= fraction * n <= n - 1:
                assert abs(n_out[key] - fraction * n) <= 0.5
    if fraction > 0:
        assert abs(len(outs) / len(index) - fraction) < 0.1


def test_in_out_split_is_deterministic_for_a_seed():
    index = make_index(default_counts())
    a = in_out_split(index, 0.2, seed=3)
    assert a == in_out_split(index, 0.2, seed=3)
    b = in_out_split(index, 0.2, seed=4)
    assert a[1] != b[1]


def test_a_domains_split_does_not_depend_on_the_other_domains():
    """Adding or removing a domain leaves every other domain's split (by path) unchanged."""
    full = make_index(default_counts())
    part = make_index({k: v for k, v in default_counts().items() if k[0] != "clipart"},
                      domains=["art", "photo"])  # photo's domain id changes from 2 to 1
    out_full = {full.paths[i] for i in in_out_split(full, 0.2, 0)[1]}
    out_part = {part.paths[i] for i in in_out_split(part, 0.2, 0)[1]}
    assert out_part == {p for p in out_full if "/clipart/" not in p}


def test_leave_one_domain_out_roles():
    index = make_index(default_counts())
    s = make_splits(index, holdout_domains=["clipart"], val_fraction=0.2, split_seed=0)
    ins, outs = in_out_split(index, 0.2, 0)
    held = DOMAINS.index("clipart")
    assert s.train_domains == ["art", "photo"]
    assert s.train == [i for i in ins if index.domain_ids[i] != held]
    assert s.train_classes == list(range(len(CLASSES))) and s.base_classes is None and s.new_classes is None
    roles = {(e.domain, e.split): (e.role, e.indices) for e in s.evals}
    assert roles[("clipart", "in")] == ("test", [i for i in ins if index.domain_ids[i] == held])
    assert roles[("clipart", "out")] == ("oracle", [i for i in outs if index.domain_ids[i] == held])
    for d in ("art", "photo"):
        di = DOMAINS.index(d)
        assert roles[(d, "out")] == ("val", [i for i in outs if index.domain_ids[i] == di])
        assert (d, "in") not in roles  # training images are never an evaluation set
    assert {e.name for e in s.evals} == {"clipart/in", "clipart/out", "art/out", "photo/out"}


def test_several_held_out_domains_and_no_validation():
    index = make_index(default_counts())
    s = make_splits(index, holdout_domains=["art", "photo"], val_fraction=0.0, split_seed=0)
    assert s.train_domains == ["clipart"]
    assert [(e.name, e.role) for e in s.evals] == [("art/in", "test"), ("photo/in", "test")]
    assert len(s.evals[0].indices) == sum(v for (d, _), v in default_counts().items() if d == "art")


def test_holding_out_every_domain_is_an_error():
    index = make_index(default_counts())
    with pytest.raises(DataError, match="leaves no domain to train on"):
        make_splits(index, holdout_domains=DOMAINS, val_fraction=0.2, split_seed=0)


@pytest.mark.parametrize("C", range(2, 10))
def test_base_new_classes_split_in_half(C):
    base, new = base_new_classes(C)
    assert base == list(range(math.ceil(C / 2))) and new == list(range(math.ceil(C / 2), C))


def test_base_to_new_trains_on_the_first_half_of_sorted_classes():
    index = make_index(default_counts())  # CLASSES are sorted, as scan() sorts folders
    s = make_splits(index, holdout_domains=["photo"], val_fraction=0.2, split_seed=0, base_to_new=True)
    assert [CLASSES[c] for c in s.base_classes] == ["apple", "bike", "car"]
    assert [CLASSES[c] for c in s.new_classes] == ["dog", "egg"]
    assert s.train_classes == s.base_classes
    assert {index.labels[i] for i in s.train} == set(s.base_classes)
    ins, _ = in_out_split(index, 0.2, 0)
    photo = DOMAINS.index("photo")
    expected = [i for i in ins if index.domain_ids[i] != photo and index.labels[i] in s.base_classes]
    assert s.train == expected
    test = next(e for e in s.evals if e.role == "test")
    assert {index.labels[i] for i in test.indices} == set(range(len(CLASSES)))  # evaluated on all classes


def test_base_to_new_needs_two_classes():
    index = make_index({("art", "apple"): 3, ("photo", "apple"): 3}, classes=["apple"])
    with pytest.raises(DataError, match="--base-to-new needs at least 2 classes"):
        make_splits(index, holdout_domains=[], val_fraction=0.2, split_seed=0, base_to_new=True)


@pytest.mark.parametrize("shots", (1, 4, 16, 100))
def test_few_shot_caps_each_class_and_domain(shots):
    index = make_index(default_counts())
    full = make_splits(index, holdout_domains=["art"], val_fraction=0.2, split_seed=0)
    s = make_splits(index, holdout_domains=["art"], val_fraction=0.2, split_seed=0, shots=shots, shot_seed=1)
    assert set(s.train) <= set(full.train)
    available, chosen = group(index, full.train), group(index, s.train)
    assert chosen == Counter({k: min(shots, n) for k, n in available.items()})
    again = make_splits(index, holdout_domains=["art"], val_fraction=0.2, split_seed=0, shots=shots, shot_seed=1)
    assert again.train == s.train
    assert [e.indices for e in s.evals] == [e.indices for e in full.evals]  # evaluation is not thinned


def test_few_shot_seed_changes_the_choice():
    index = make_index(default_counts())
    ids = list(range(len(index)))
    assert few_shot(index, ids, 2, seed=0) != few_shot(index, ids, 2, seed=1)


# --- the official code's protocol (--protocol official): DomainBed's split, Table 4's test and scoring


def reference_domainbed_split(n: int, fraction: float, seed_args: tuple) -> tuple[list[int], list[int]]:
    """DomainBed's misc.split_dataset written out: positions ('out', 'in') of n items in ImageFolder order."""
    import hashlib

    import numpy as np
    seed = int(hashlib.md5(str(seed_args).encode("utf-8")).hexdigest(), 16) % (2 ** 31)
    keys = list(range(n))
    np.random.RandomState(seed).shuffle(keys)
    return keys[:int(n * fraction)], keys[int(n * fraction):]


def _domain_members(index: ImageIndex, d: int, labels=None) -> list[int]:
    # make_index lists images by domain, class, file: each domain's run is ImageFolder's order
    return [i for i in range(len(index)) if index.domain_ids[i] == d and (labels is None or index.labels[i] in labels)]


def test_official_leave_one_domain_out_is_domainbeds_split_tested_on_out():
    index = make_index(default_counts())
    splits = make_splits(index, holdout_domains=["photo"], val_fraction=0.2, split_seed=0, protocol="official")
    evals = {es.name: es for es in splits.evals}
    train = []
    for d, name in enumerate(DOMAINS):
        members = _domain_members(index, d)
        out_pos, in_pos = reference_domainbed_split(len(members), 0.2, (0, d))
        outs, ins = sorted(members[k] for k in out_pos), sorted(members[k] for k in in_pos)
        role = "test" if name == "photo" else "val"
        assert evals[f"{name}/out"].role == role and evals[f"{name}/out"].indices == outs
        assert f"{name}/in" not in evals  # the official code tests on the held-out domain's 20 % only
        if name != "photo":
            train += ins
    assert splits.train == sorted(train) and splits.protocol == "official"
    # the split is not clipood's per-class one
    assert splits.train != make_splits(index, holdout_domains=["photo"], val_fraction=0.2, split_seed=0).train


def test_official_in_the_wild_takes_floor_half_trains_on_base_and_tests_the_whole_domain():
    index = make_index(default_counts())  # 5 classes
    splits = make_splits(index, holdout_domains=["photo"], val_fraction=0.2, split_seed=0, base_to_new=True,
                         protocol="official")
    assert splits.base_classes == [0, 1] and splits.new_classes == [2, 3, 4]  # int(0.5 * 5); OfficeHome: 32 of 65
    assert make_splits(index, holdout_domains=["photo"], val_fraction=0.2, split_seed=0,
                       base_to_new=True).base_classes == [0, 1, 2]  # clipood's (CoOp's) ceil
    tests = [es for es in splits.evals if es.role == "test"]
    assert len(tests) == 1 and tests[0].scoring == "all" and tests[0].classes is None
    assert tests[0].indices == _domain_members(index, DOMAINS.index("photo"))  # every image of the domain
    train, vals = [], {es.domain: es for es in splits.evals if es.role == "val"}
    for d, name in enumerate(DOMAINS):
        if name == "photo":
            continue
        members = _domain_members(index, d, labels={0, 1})
        out_pos, in_pos = reference_domainbed_split(len(members), 0.2, (0, d, "base"))
        train += [members[k] for k in in_pos]
        assert vals[name].indices == sorted(members[k] for k in out_pos) and vals[name].classes == [0, 1]
    assert splits.train == sorted(train)
    assert {index.labels[i] for i in splits.train} == {0, 1}


def test_in_the_wild_scoring_scores_base_and_new_images_among_all_classes():
    import torch

    from clipood.data.splits import EvalSet
    from clipood.evaluation import ClassWeights, accuracies
    classes = CLASSES[:4]
    index = make_index({("photo", c): 2 for c in classes}, domains=["photo"], classes=classes)
    # one row per image (labels 0,0,1,1,2,2,3,3): cosine scores against 4 orthogonal class texts
    # in each pair the first is right among all classes, the second right only among its own half
    feats = torch.tensor([[.9, .1, .8, 0], [.4, .1, .8, 0],    # base 0 (the second: 2 wins among all)
                          [0, .9, 0, .2], [.3, .5, 0, .7],     # base 1 (3 wins)
                          [.1, 0, .9, .3], [.8, 0, .3, .1],    # new 2 (0 wins)
                          [0, 0, .2, .9], [0, .9, .1, .2]])    # new 3 (1 wins)
    labels = torch.tensor(index.labels)
    pred_all = feats.argmax(1)
    expect_base = (pred_all[:4] == labels[:4]).float().mean().item()
    expect_new = (pred_all[4:] == labels[4:]).float().mean().item()
    ids = torch.arange(len(index))
    every = list(range(len(index)))
    res = accuracies(feats, ids, index, [EvalSet("photo", "all", "test", every, scoring="all")],
                     ClassWeights(torch.eye(4)), base=[0, 1], new=[2, 3])["photo/all"]
    assert (res["base"], res["new"]) == (expect_base, expect_new) == (0.5, 0.5)
    assert res["accuracy"] == (pred_all == labels).float().mean().item() == 0.5  # paper Table 4's Total
    split = accuracies(feats, ids, index, [EvalSet("photo", "all", "test", every)], ClassWeights(torch.eye(4)),
                       base=[0, 1], new=[2, 3])["photo/all"]
    own_base = (feats[:4, :2].argmax(1) == labels[:4]).float().mean().item()  # CoOp's: each half among its own
    own_new = (feats[4:, 2:].argmax(1) + 2 == labels[4:]).float().mean().item()
    assert (split["base"], split["new"]) == (own_base, own_new) == (1.0, 1.0)


def test_official_in_the_wild_on_a_folder_counts(shapes_root, tiny_pretrained, tmp_path):
    """End to end on an image folder (zero-shot run): the counts the official protocol gives, from the files."""
    import os

    from clipood.commands import zeroshot
    from clipood.config import Config, validate
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.data.base_to_new, cfg.data.protocol = True, "official"
    cfg.run.output_dir, cfg.run.name = str(tmp_path / "runs"), "zs"
    _, results = zeroshot(validate(cfg, training=False), progress=False)
    domains = sorted(d for d in os.listdir(shapes_root) if (shapes_root / d).is_dir())
    classes = sorted(os.listdir(shapes_root / domains[0]))
    files = {(d, c): len(os.listdir(shapes_root / d / c)) for d in domains for c in classes}
    base = classes[:len(classes) // 2]
    test = results["zeroshot"]["sketch/all"]
    assert (test["n"], test["n_base"], test["n_new"]) == (
        sum(files[("sketch", c)] for c in classes), sum(files[("sketch", c)] for c in base),
        sum(files[("sketch", c)] for c in classes[len(base):]))
    for d in domains:
        if d != "sketch":
            n_base = sum(files[(d, c)] for c in base)
            assert results["zeroshot"][f"{d}/out"]["n"] == int(n_base * 0.2)  # DomainBed: int(n * holdout)
    assert results["train_images"] == sum(n - int(n * 0.2) for n in (sum(files[(d, c)] for c in base)
                                                                     for d in domains if d != "sketch"))
    assert results["protocol"] == "official"
