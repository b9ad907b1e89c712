"""Model selection among a method's hyper-parameter variants, as DomainBed does it.

* training-domain validation: per (dataset, method, held-out domains, seed), keep the
  variant whose final model has the best mean accuracy on the training domains' 'out'
  splits (role 'val'; base-class accuracy with a base/new class split). No test data is
  looked at: this is the number to report.
* oracle: the same, scored on the held-out domain's 'out' split (role 'oracle'; H with a
  class split): an upper bound that peeks at the test distribution.

Like DomainBed, each variant is judged by its final model (intermediate evaluations
every ``--eval-every`` steps are plotted, not selected: their averaged weights are not saved).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from .records import RunRecord
from .stats import harmonic, mean

__all__ = ["DESCRIPTION", "MODES", "SelectionInfo", "score", "select"]

MODES = ("training-domain", "oracle")
DESCRIPTION = {
    "training-domain": "training-domain validation (DomainBed): per method, held-out domain and seed, the "
                       "hyper-parameter variant with the best mean accuracy on the training domains' 'out' "
                       "splits (base classes only with a base/new split)",
    "oracle": "oracle (DomainBed): per method, held-out domain and seed, the variant with the best accuracy on "
              "the held-out domain's 'out' split (H with a base/new split); an upper bound, it peeks at the test "
              "distribution",
}


def score(rec: RunRecord, mode: str) -> float:
    if mode == "training-domain":
        es = rec.entries("val")
        return mean(e.get("base" if rec.base_to_new else "accuracy") for e in es)
    es = rec.entries("oracle") or rec.test_entries()  # no separate oracle split: the test split itself
    if rec.base_to_new:
        return harmonic(mean(e.get("base") for e in es), mean(e.get("new") for e in es))
    return mean(e.get("accuracy") for e in es)


@dataclass
class SelectionInfo:
    mode: str
    groups: int
    groups_with_choice: int
    max_variants: int
    no_score: int  # groups whose variants had no validation number (first variant kept)

    def statement(self) -> str:
        if self.groups_with_choice == 0:
            return ("Model selection: none needed (one configuration per method; every number is the final "
                    "model of its run). With hyper-parameter variants, clipood selects by "
                    + DESCRIPTION["training-domain"] + ".")
        text = f"Model selection: {DESCRIPTION[self.mode]}; {self.groups_with_choice} of {self.groups} cells chose " \
               f"among up to {self.max_variants} variants."
        if self.no_score:
            text += f" {self.no_score} had no split to score on and kept the first variant."
        return text


def select(records: list[RunRecord], mode: str) -> tuple[list[RunRecord], SelectionInfo]:
    if mode not in MODES:
        raise ValueError(f"unknown selection {mode!r}; known: {', '.join(MODES)}")
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[(r.dataset, r.method, r.holdout, r.base_to_new, r.seed)].append(r)
    chosen, with_choice, most, no_score = [], 0, 1, 0
    for recs in groups.values():
        variants = {repr(sorted(r.variant.items())) for r in recs}
        most = max(most, len(variants))
        if len(recs) == 1:
            chosen.append(recs[0])
            continue
        with_choice += 1
        scored = [(score(r, mode), i, r) for i, r in enumerate(recs)]
        valid = [s for s in scored if not math.isnan(s[0])]
        if not valid:
            no_score += 1
            chosen.append(recs[0])
            continue
        chosen.append(max(valid, key=lambda s: (s[0], -s[1]))[2])
    order = {id(r): i for i, r in enumerate(records)}
    chosen.sort(key=lambda r: order[id(r)])
    return chosen, SelectionInfo(mode, len(groups), with_choice, most, no_score)
