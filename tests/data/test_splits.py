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
