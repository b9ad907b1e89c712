"""Evaluation protocols as index splits of an ``ImageIndex``.

* in/out split (DomainBed): every domain's images are split per class into an 'in'
  part and an 'out' part of ``val_fraction``, with a fixed seed, so all methods and
  seeds see the same split. Training uses the 'in' part of the training domains.
* leave-one-domain-out: held-out domains are not trained on; their 'in' part is the
  reported test number (as DomainBed reports), their 'out' part is kept for oracle
  selection. Training domains' 'out' parts are the validation sets.
* base-to-new (CoOp): classes sorted by label, the first ceil(C/2) are base, the rest new;
  training sees base classes only (their images and their names).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from ..errors import DataError
from .folder import ImageIndex

__all__ = ["EvalSet", "Splits", "base_new_classes", "few_shot", "in_out_split", "make_splits", "training_classes"]


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


def base_new_classes(num_classes: int) -> tuple[list[int], list[int]]:
    """CoOp's split: the first ceil(C/2) labels are base, the rest new."""
    n = math.ceil(num_classes / 2)
    return list(range(n)), list(range(n, num_classes))


def training_classes(num_classes: int, base_to_new: bool) -> tuple[list[int], Optional[list[int]], Optional[list[int]]]:
    """(classes trained on, base, new): every class, or with base-to-new the base half only."""
    if not base_to_new:
        return list(range(num_classes)), None, None
    if num_classes < 2:
        raise DataError("--base-to-new needs at least 2 classes")
    base, new = base_new_classes(num_classes)
    return base, base, new


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
                base_to_new: bool = False, shots: Optional[int] = None, shot_seed: int = 0) -> Splits:
    held = [index.domain_index(d) for d in holdout_domains]
    train_domains = [d for d in range(len(index.domains)) if d not in held]
    if not train_domains:
        raise DataError(f"--holdout-domain: holding out {', '.join(holdout_domains)} leaves no domain "
                        f"to train on; domains: {', '.join(index.domains)}")
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
