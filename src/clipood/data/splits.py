"""Evaluation protocols as index splits of an ``ImageIndex``.

* in/out split (DomainBed): every domain's images are split per class into an 'in'
  part and an 'out' part of ``val_fraction``, with a fixed seed, so all methods and
  seeds see the same split. Training uses the 'in' part of the training domains.
* leave-one-domain-out: held-out domains are not trained on; their 'in' part is the
  reported test number (as DomainBed reports), their 'out' part is kept for oracle
  selection. Training domains' 'out' parts are the validation sets.
* base-to-new (CoOp): classes sorted by label, the first ceil(C/2) are base, the rest new;
  training sees base classes only (their images and their names).

``protocol="official"`` is the official code's reading of domain-split data
(``converter_domainbed.py``), reproduced exactly: DomainBed's own split (``misc.split_dataset``:
a ``numpy.random.RandomState(seed_hash(trial_seed, env_i))`` shuffle of each domain's images
in ImageFolder order, the first ``int(n * fraction)`` going 'out'); leave-one-domain-out tests
on the held-out domain's 'out' part. With base-to-new ("in the wild", paper Table 4) the
first floor(C/2) classes are base, each domain's base and new images are split apart (seeds
``seed_hash(trial_seed, env_i, 'base' / 'open')``), training domains validate on their base
'out' part among the base classes, and the whole held-out domain is the test set, base and
new images each scored among all classes.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from ..errors import DataError
from .folder import ImageIndex

__all__ = ["EvalSet", "PROTOCOLS", "Splits", "base_new_classes", "domainbed_split", "few_shot", "in_out_split",
           "make_splits", "seed_hash", "training_classes"]

PROTOCOLS = ("clipood", "official")  # --protocol


@dataclass
class EvalSet:
    """One evaluation split: images of one domain and split; ``role`` says what it is for."""

    domain: str
    split: str  # "in" or "out" (DomainBed protocol); "val" or "test" (a dataset's own splits)
    role: str  # "test" (held-out domain), "oracle" (held-out 'out'), "val" (training domain 'out')
    indices: list[int]
    # Labels the images are scored among (None: all classes). ImageNet-A/-R cover 200 of
    # ImageNet's 1000 classes and are evaluated on that subset only.
    classes: Optional[list[int]] = None
    # With base and new classes: 'split' scores base images among the base classes and new among the new
    # (CoOp); 'all' scores both among every class (the official code's in-the-wild test, paper Table 4)
    scoring: str = "split"

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.split}"


@dataclass
class Splits:
    train: list[int]
    train_domains: list[str]
    train_classes: list[int]  # global labels the model is trained on
    base_classes: Optional[list[int]]  # None unless base-to-new
    new_classes: Optional[list[int]]
    evals: list[EvalSet]
    protocol: str = "clipood"  # how the data was split and is scored (PROTOCOLS)


def in_out_split(index: ImageIndex, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per (domain, class), a seeded shuffle; the last round(fraction * n) go 'out'."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (d, y) in enumerate(zip(index.domain_ids, index.labels)):
        groups[(d, y)].append(i)
    ins, outs = [], []
    for (d, y), idx in sorted(groups.items()):
        idx = list(idx)
        random.Random(f"{seed}/{index.domains[d]}/{index.class_folders[y]}").shuffle(idx)
        n_out = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) > 1:
            n_out = max(n_out, 1)
        n_out = min(n_out, len(idx) - 1)  # keep at least one image 'in'
        ins.extend(sorted(idx[: len(idx) - n_out]))
        outs.extend(sorted(idx[len(idx) - n_out:]))
    return sorted(ins), sorted(outs)


def base_new_classes(num_classes: int, protocol: str = "clipood") -> tuple[list[int], list[int]]:
    """CoOp's split: the first ceil(C/2) labels are base, the rest new; the official in-the-wild code takes
    the first int(0.5 * C) = floor(C/2) (OfficeHome: 32 of 65)."""
    n = num_classes // 2 if protocol == "official" else math.ceil(num_classes / 2)
    return list(range(n)), list(range(n, num_classes))


def training_classes(num_classes: int, base_to_new: bool,
                     protocol: str = "clipood") -> tuple[list[int], Optional[list[int]], Optional[list[int]]]:
    """(classes trained on, base, new): every class, or with base-to-new the base half only."""
    if not base_to_new:
        return list(range(num_classes)), None, None
    if num_classes < 2:
        raise DataError("--base-to-new needs at least 2 classes")
    base, new = base_new_classes(num_classes, protocol)
    return base, base, new


def seed_hash(*args) -> int:
    """DomainBed's ``misc.seed_hash``: an integer seed from its arguments (md5 of their tuple's repr)."""
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2**31)


def domainbed_split(members: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """DomainBed's ``misc.split_dataset`` on ``members`` (in ImageFolder order): (in, out), where 'out' is the
    first int(n * fraction) positions of a ``RandomState(seed)`` shuffle."""
    import numpy as np
    keys = list(range(len(members)))
    np.random.RandomState(seed).shuffle(keys)
    n_out = int(len(members) * fraction)
    return sorted(members[k] for k in keys[n_out:]), sorted(members[k] for k in keys[:n_out])


def few_shot(index: ImageIndex, indices: list[int], shots: int, seed: int) -> list[int]:
    """At most ``shots`` images per (domain, class), chosen with ``seed``."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in indices:
        groups[(index.domain_ids[i], index.labels[i])].append(i)
    out = []
    for key, idx in sorted(groups.items()):
        rng = random.Random(f"shots/{seed}/{key[0]}/{key[1]}")
        out.extend(rng.sample(idx, min(shots, len(idx))))
    return sorted(out)


def make_splits(index: ImageIndex, *, holdout_domains: list[str], val_fraction: float, split_seed: int,
                base_to_new: bool = False, shots: Optional[int] = None, shot_seed: int = 0,
                protocol: str = "clipood") -> Splits:
    held = [index.domain_index(d) for d in holdout_domains]
    train_domains = [d for d in range(len(index.domains)) if d not in held]
    if not train_domains:
        raise DataError(f"--holdout-domain: holding out {', '.join(holdout_domains)} leaves no domain "
                        f"to train on; domains: {', '.join(index.domains)}")
    if protocol == "official":
        return official_splits(index, held, train_domains, val_fraction, split_seed, base_to_new, shots, shot_seed)
    ins, outs = in_out_split(index, val_fraction, split_seed)
    train_classes, base, new = training_classes(index.num_classes, base_to_new)
    allowed = set(train_classes)
    train = [i for i in ins if index.domain_ids[i] in train_domains and index.labels[i] in allowed]
    if shots is not None:
        train = few_shot(index, train, shots, shot_seed)

    evals = []
    for d, name in enumerate(index.domains):
        d_in = [i for i in ins if index.domain_ids[i] == d]
        d_out = [i for i in outs if index.domain_ids[i] == d]
        if d in held:
            evals.append(EvalSet(name, "in", "test", d_in))
            if d_out:
                evals.append(EvalSet(name, "out", "oracle", d_out))
        elif d_out:
            evals.append(EvalSet(name, "out", "val", d_out))
    return Splits(train=train, train_domains=[index.domains[d] for d in train_domains],
                  train_classes=train_classes, base_classes=base, new_classes=new, evals=evals)


def official_splits(index: ImageIndex, held: list[int], train_domains: list[int], val_fraction: float,
                    split_seed: int, base_to_new: bool, shots: Optional[int], shot_seed: int) -> Splits:
    """The official code's splits of domain-split data (module docstring); ``split_seed`` is DomainBed's
    trial seed (the official code: 0)."""
    train_classes, base, new = training_classes(index.num_classes, base_to_new, "official")
    base_set = set(train_classes)
    by_domain: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(index.domain_ids):
        by_domain[d].append(i)
    train, evals = [], []
    for d, name in enumerate(index.domains):
        members = sorted(by_domain[d], key=lambda i: (index.labels[i], i))  # ImageFolder order: class, then file
        if not base_to_new:  # converter_domainbed, domain_shift
            d_in, d_out = domainbed_split(members, val_fraction, seed_hash(split_seed, d))
            if d in held:
                evals.append(EvalSet(name, "out", "test", d_out))
            else:
                train += d_in
                evals.append(EvalSet(name, "out", "val", d_out))
            continue
        d_base = [i for i in members if index.labels[i] in base_set]  # in_the_wild
        d_new = [i for i in members if index.labels[i] not in base_set]
        base_in, base_out = domainbed_split(d_base, val_fraction, seed_hash(split_seed, d, "base"))
        if d in held:
            evals.append(EvalSet(name, "all", "test", sorted(d_base + d_new), scoring="all"))
        else:
            train += base_in
            evals.append(EvalSet(name, "out", "val", base_out, classes=list(base)))
    train = sorted(train)
    if shots is not None:
        train = few_shot(index, train, shots, shot_seed)
    return Splits(train=train, train_domains=[index.domains[d] for d in train_domains],
                  train_classes=train_classes, base_classes=base, new_classes=new, evals=evals, protocol="official")
