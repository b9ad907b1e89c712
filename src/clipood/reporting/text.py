"""Plain-text tables (markdown pipe tables): one run's results, summaries and reports."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

__all__ = ["fmt_pct", "markdown_table", "results_table"]


def fmt_pct(x: Any) -> str:
    """Accuracy in [0, 1] as a percentage with one decimal; '-' when missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100.0 * x:.1f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    def line(r):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


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
