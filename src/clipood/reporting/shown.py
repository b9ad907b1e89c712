"""The one number a run's table shows for it, so that a plot never draws a number no table has.

* Table 1 (one held-out domain): accuracy on the held-out domain;
* Table 2 (several test sets): OOD avg over the shifted test sets (the one shifted set, or
  the one in-distribution set, where the table has no average);
* Table 3 (base-to-new): H of base and new accuracy on the in-distribution test set(s);
* Table 4 (held-out domain and new classes): Total accuracy on the held-out domain.

A base-to-new run with several held-out domains is in no table, and in no plot.
"""

from __future__ import annotations

import math
from typing import Optional

from .records import RunRecord
from .stats import harmonic, mean

__all__ = ["METRIC", "shown_kind", "shown_value"]

METRIC = {"table1": "held-out accuracy (%)", "table2": "OOD avg accuracy (%)", "table3": "H of base and new (%)",
          "table4": "Total accuracy on the held-out domain (%)"}


def shown_kind(r: RunRecord) -> Optional[str]:
    """The table a run's numbers land in (layouts' rules); None for none."""
    if r.base_to_new:
        return "table3" if not r.holdout else ("table4" if len(r.holdout) == 1 else None)
    return "table1" if len(r.holdout) == 1 else "table2"


def _tests(evals: dict) -> list[dict]:
    es = [e for e in evals.values() if e.get("role") == "test"]
    return es or [e for e in evals.values() if e.get("role") == "val"]


def shown_value(r: RunRecord, evals: Optional[dict] = None) -> float:
    """That number (in [0, 1]) for the evaluation ``evals`` of run ``r`` (default: its final one); NaN if none."""
    evals = r.evals if evals is None else evals
    kind, es = shown_kind(r), _tests(evals or {})
    if kind in ("table1", "table4"):
        return mean(e.get("accuracy") for e in es)
    if kind == "table3":
        ids = [e for e in es if e.get("domain") in r.train_domains] or es
        return harmonic(mean(e.get("base") for e in ids), mean(e.get("new") for e in ids))
    if kind == "table2":
        tests = [e for e in evals.values() if e.get("role") == "test"]
        shifted = {e.get("domain") for e in tests if e.get("domain") not in r.train_domains}
        if shifted:
            return mean(mean(e.get("accuracy") for e in tests if e.get("domain") == d) for d in shifted)
        ids = {e.get("domain") for e in tests}
        if len(ids) == 1:
            return mean(e.get("accuracy") for e in tests)
        if not tests and es:  # 'ID (val)': the validation splits' mean is the table's only column
            return mean(e.get("accuracy") for e in es)
    return math.nan
