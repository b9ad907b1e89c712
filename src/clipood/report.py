"""Result tables for a run and for comparisons of methods over seeds."""

from __future__ import annotations

import math
import statistics
from typing import Optional, Sequence

from .tables import fmt_pct, markdown_table


def _metrics(entry: Optional[dict]) -> list[str]:
    if entry is None:
        return []
    keys = ["base", "new", "H"] if "base" in entry else []
    return keys + ["accuracy"]


def results_table(results: dict) -> str:
    """One row per evaluation split: zero-shot and trained accuracy (base/new/H when split)."""
    zs, final = results.get("zeroshot"), results.get("final")
    sample = next(iter((final or zs or {}).values()), {})
    keys = _metrics(sample)
    headers = ["split", "role", "n"]
    cols = []
    if zs:
        cols.append(("zero-shot", zs))
    if final:
        cols.append(("trained" if results.get("kind") == "train" else "model", final))
    for label, _ in cols:
        headers += [f"{label} {k}" if k != "accuracy" else f"{label} acc" for k in keys]
    rows = []
    names = list((final or zs).keys())
    for name in names:
        ref = (final or zs)[name]
        row = [name, ref["role"], ref["n"]]
        for _, data in cols:
            e = data.get(name, {})
            row += [fmt_pct(e.get(k)) for k in keys]
        rows.append(row)
    return markdown_table(headers, rows)


def mean_std(values: Sequence[float]) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    m = 100 * statistics.fmean(vals)
    if len(vals) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {100 * statistics.stdev(vals):.1f}"
