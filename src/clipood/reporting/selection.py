"""Model selection among a method's hyper-parameter variants, as DomainBed does it.

* training-domain validation: per (dataset, method, held-out domains, seed), keep the
  variant whose final model has the best mean accuracy on the training domains' 'out'
  splits (role 'val'; base-class accuracy with a base/new class split). No test data is
  looked at: this is the number to report.
* leave-one-domain-out cross-validation (DomainBed's ``LeaveOneOutSelectionMethod``): for
  a run holding out test domain t, each training domain v in turn is validation: the
  same method, variant and seed trained with both t and v held out (``holdout: [[t, v]]``
  in a sweep) is scored on v's 'in' split; a variant's score is the mean over every v.
  Only runs with one held-out domain can be selected so; a variant lacking any of its
  runs is not scored, and a cell none of whose variants can be scored is left empty and
  counted, never filled with another selection.
* oracle: the same, scored on the held-out domain's 'out' split (role 'oracle'; H with a
  class split): an upper bound that peeks at the test distribution.

Like DomainBed, each variant is judged by its final model (intermediate evaluations
every ``--eval-every`` steps are plotted, not selected: their averaged weights are not saved).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from ..config import Config, flag_name, iter_fields
from .records import RunRecord
from .stats import harmonic, mean

__all__ = ["DESCRIPTION", "MODES", "SelectionInfo", "leave_one_out_score", "score", "select", "variant_label"]

MODES = ("training-domain", "leave-one-out", "oracle")
TITLE = {"training-domain": "training-domain validation", "leave-one-out": "leave-one-domain-out selection",
         "oracle": "oracle selection"}
DESCRIPTION = {
    "training-domain": "training-domain validation (DomainBed): per method, held-out domain and seed, the "
                       "hyper-parameter variant with the best mean accuracy on the training domains' 'out' "
                       "splits (base classes only with a base/new split)",
    "leave-one-out": "leave-one-domain-out cross-validation (DomainBed): per method, held-out domain t and seed, "
                     "the variant whose runs holding out t and one training domain v score best on v's 'in' "
                     "split, averaged over every training domain v (base classes only with a base/new split)",
    "oracle": "oracle (DomainBed): per method, held-out domain and seed, the variant with the best accuracy on "
              "the held-out domain's 'out' split (H with a base/new split); an upper bound, it peeks at the test "
              "distribution",
}
# What a variant's options are called in tables: their flags ('loss.margin_lambda' -> 'lambda').
SHORT_KEYS = {f"{sec}.{f.name}": flag_name(f) for sec, _, f in iter_fields(Config)}


def _vkey(variant: dict) -> str:
    return repr(sorted(variant.items()))


def score(rec: RunRecord, mode: str) -> float:
    """A variant's validation number under training-domain or oracle selection (NaN: none)."""
    if mode == "training-domain":
        es = rec.entries("val")
        return mean(e.get("base" if rec.base_to_new else "accuracy") for e in es)
    es = rec.entries("oracle") or rec.test_entries()  # no separate oracle split: the test split itself
    if rec.base_to_new:
        return harmonic(mean(e.get("base") for e in es), mean(e.get("new") for e in es))
    return mean(e.get("accuracy") for e in es)


def _pair_index(records: list[RunRecord]) -> dict[tuple, RunRecord]:
    return {(r.dataset, r.method, r.base_to_new, r.seed, _vkey(r.variant), frozenset(r.holdout)): r
            for r in records if len(r.holdout) == 2}


def leave_one_out_score(rec: RunRecord, pairs: dict[tuple, RunRecord]) -> tuple[float, list[str]]:
    """Mean over training domains v of the (t, v)-held-out run's accuracy on v's 'in' split, and the
    held-out pairs whose runs are missing (then NaN)."""
    (test,) = rec.holdout
    train = rec.train_domains or [d for d in rec.domains if d != test]
    if not train:
        return math.nan, [f"{test}+? (the run names no training domains)"]
    values, missing = [], []
    for v in train:
        p = pairs.get((rec.dataset, rec.method, rec.base_to_new, rec.seed, _vkey(rec.variant), frozenset((test, v))))
        es = [e for e in p.entries("test") if e.get("domain") == v] if p is not None else []
        x = mean(e.get("base" if rec.base_to_new else "accuracy") for e in es)
        if math.isnan(x):
            missing.append(f"{test}+{v}")
        values.append(x)
    return (math.nan if missing else mean(values)), missing


def variant_label(variant: dict[str, Any], keys: list[str]) -> str:
    """'lambda=0.1, beta=0.5': the options that tell a cell's variants apart."""
    def fmt(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{SHORT_KEYS.get(k, k.rsplit('.', 1)[-1])}={fmt(variant.get(k))}" for k in keys) or "default"


@dataclass
class SelectionInfo:
    mode: str
    groups: int
    groups_with_choice: int
    max_variants: int
    no_score: int  # groups whose variants had no validation number (first variant kept)
    unselectable: int = 0  # leave-one-out: groups with a choice none of whose variants had their runs (left empty)
    not_applicable: int = 0  # leave-one-out: groups with a choice but not one held-out domain (left empty)
    unscored_variants: int = 0  # leave-one-out: variants left out of a choice for missing runs
    missing: list[str] = field(default_factory=list)  # examples of the runs leave-one-out needs
    variant_of: dict[int, str] = field(default_factory=dict)  # id(chosen record) -> its variant, where chosen

    @property
    def title(self) -> str:
        return TITLE[self.mode]

    def statement(self) -> str:
        if self.groups_with_choice == 0:
            return ("Model selection: none needed (one configuration per method; every number is the final "
                    "model of its run). With hyper-parameter variants, clipood selects by "
                    + DESCRIPTION["training-domain"] + ".")
        text = f"Model selection: {DESCRIPTION[self.mode]}; {self.groups_with_choice} of {self.groups} cells chose " \
               f"among up to {self.max_variants} variants."
        if self.no_score:
            text += f" {self.no_score} had no split to score on and kept the first variant."
        if self.unselectable or self.unscored_variants:
            examples = "; ".join(self.missing[:3]) + (f" and {len(self.missing) - 3} more" if len(self.missing) > 3
                                                      else "")
            if self.unselectable:
                text += f" {self.unselectable} cell(s) are empty: no variant has every run this selection needs."
            if self.unscored_variants:
                text += f" {self.unscored_variants} variant(s) lacked some and were not among the choices."
            text += (f" Missing (domains held out at once, seed, variant): {examples}. A sweep gets them by listing "
                     f"each pair beside the single domains, e.g. holdout: [a, b, c, [a, b], [a, c], [b, c]].")
        if self.not_applicable:
            text += f" {self.not_applicable} cell(s) hold out no single domain and are empty under this selection."
        return text


def select(records: list[RunRecord], mode: str) -> tuple[list[RunRecord], SelectionInfo]:
    """The chosen record per (dataset, method, held-out domains, class split, seed), in input order."""
    if mode not in MODES:
        raise ValueError(f"unknown selection {mode!r}; known: {', '.join(MODES)}")
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[(r.dataset, r.method, r.holdout, r.base_to_new, r.seed)].append(r)
    pairs = _pair_index(records) if mode == "leave-one-out" else {}
    info = SelectionInfo(mode, len(groups), 0, 1, 0)
    chosen = []
    for recs in groups.values():
        variants = {_vkey(r.variant) for r in recs}
        info.max_variants = max(info.max_variants, len(variants))
        if len(recs) == 1:
            chosen.append(recs[0])
            continue
        info.groups_with_choice += 1
        if mode == "leave-one-out" and len(recs[0].holdout) != 1:
            info.not_applicable += 1
            continue
        keys = sorted({k for r in recs for k in r.variant if len({repr(x.variant.get(k)) for x in recs}) > 1})
        scored = []
        for i, r in enumerate(recs):
            if mode == "leave-one-out":
                s, missing = leave_one_out_score(r, pairs)
                info.missing += [f"{r.dataset} {r.method} {m} seed {r.seed} {variant_label(r.variant, keys)}"
                                 for m in missing]
            else:
                s = score(r, mode)
            scored.append((s, i, r))
        valid = [s for s in scored if not math.isnan(s[0])]
        best: Optional[RunRecord]
        if not valid and mode == "leave-one-out":
            info.unselectable += 1
            continue
        if not valid:
            info.no_score += 1
            best = recs[0]
        else:
            info.unscored_variants += len(scored) - len(valid) if mode == "leave-one-out" else 0
            best = max(valid, key=lambda s: (s[0], -s[1]))[2]
        info.variant_of[id(best)] = variant_label(best.variant, keys)
        chosen.append(best)
    order = {id(r): i for i, r in enumerate(records)}
    chosen.sort(key=lambda r: order[id(r)])
    return chosen, info
