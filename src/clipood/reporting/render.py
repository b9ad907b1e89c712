"""A ``Table`` as markdown, CSV and HTML (LaTeX: ``latex``)."""

from __future__ import annotations

import csv
import html
import io
from typing import Optional

from .stats import Stat
from .table import Table
from .text import markdown_table

__all__ = ["body", "headers", "to_csv", "to_html", "to_markdown", "variants"]


def _fmt(c: Optional[Stat], error: str = "std") -> str:
    return "-" if c is None else c.fmt(error)


def _gap(g: Optional[float]) -> str:
    return "" if g is None else f"{g:+.1f}"


def headers(t: Table) -> list[str]:
    return t.label_headers + t.columns + ([f"Δ vs paper ({t.gap_column})"] if t.has_gap() else [])


def variants(t: Table, r) -> list[Optional[str]]:
    """The row's selected variant per column (None: no choice, or an average column)."""
    return (r.variants + [None] * len(t.columns))[:len(t.columns)]


def body(t: Table, with_variants: bool = False) -> list[list[str]]:
    """Cell texts; with_variants appends '[variant]' to each number model selection chose (markdown)."""
    rows = []
    for r in t.rows:
        cells = [_fmt(c, t.error) for c in r.cells]
        if with_variants:
            cells = [c if v is None else f"{c} [{v}]" for c, v in zip(cells, variants(t, r))]
        row = list(r.labels) + cells
        if t.has_gap():
            row.append(_gap(r.gap))
        rows.append(row)
    return rows


def to_markdown(t: Table, level: int = 3) -> str:
    out = [f"{'#' * level} {t.title}", "", markdown_table(headers(t), body(t, with_variants=True)), ""]
    out += [f"- {n}" for n in t.notes]
    return "\n".join(out).rstrip() + "\n"


def to_csv(t: Table) -> str:
    """One row per table row; each column as mean, std, sem, n (number of seeds) and the selected variant,
    then the gap."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["source"] + t.label_headers
    for c in t.columns:
        head += [c, f"{c} std", f"{c} sem", f"{c} n", f"{c} selected"]
    head.append(f"delta vs paper ({t.gap_column})" if t.gap_column else "delta vs paper")
    w.writerow(head)
    for r in t.rows:
        row = [r.source] + list(r.labels)
        for c, v in zip(r.cells, variants(t, r)):
            row += ["", "", "", ""] if c is None else [f"{c.mean:.4f}", "" if c.std is None else f"{c.std:.4f}",
                                                       "" if c.sem is None else f"{c.sem:.4f}",
                                                       "" if c.n is None else c.n]
            row.append(v or "")
        row.append("" if r.gap is None else f"{r.gap:.4f}")
        w.writerow(row)
    return buf.getvalue()


def to_html(t: Table) -> str:
    e = html.escape
    parts = [f'<h3>{e(t.title)}</h3><div class="scroll"><table class="results" id="{e(t.key)}"><thead><tr>']
    parts += [f"<th>{e(h)}</th>" for h in headers(t)]
    parts.append("</tr></thead><tbody>")
    for r, cells in zip(t.rows, body(t)):
        parts.append(f'<tr class="{e(r.source)}">')
        n_labels = len(r.labels)
        vs = [None] * n_labels + variants(t, r) + [None]
        for i, c in enumerate(cells):
            tag = "th" if i < n_labels else "td"
            extra = f'<span class="variant">{e(vs[i])}</span>' if vs[i] else ""
            parts.append(f"<{tag}>{e(c)}{extra}</{tag}>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    if t.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.notes) + "</ul>")
    return "".join(parts)
