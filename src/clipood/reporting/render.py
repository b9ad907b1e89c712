"""A ``Table`` as markdown, CSV and HTML."""

from __future__ import annotations

import csv
import html
import io
from typing import Optional

from .stats import Stat
from .table import Table
from .text import markdown_table

__all__ = ["body", "headers", "to_csv", "to_html", "to_markdown"]


def _fmt(c: Optional[Stat]) -> str:
    return "-" if c is None else c.fmt()


def _gap(g: Optional[float]) -> str:
    return "" if g is None else f"{g:+.1f}"


def headers(t: Table) -> list[str]:
    return t.label_headers + t.columns + ([f"Δ vs paper ({t.gap_column})"] if t.has_gap() else [])


def body(t: Table) -> list[list[str]]:
    rows = []
    for r in t.rows:
        row = list(r.labels) + [_fmt(c) for c in r.cells]
        if t.has_gap():
            row.append(_gap(r.gap))
        rows.append(row)
    return rows


def to_markdown(t: Table, level: int = 3) -> str:
    out = [f"{'#' * level} {t.title}", "", markdown_table(headers(t), body(t)), ""]
    out += [f"- {n}" for n in t.notes]
    return "\n".join(out).rstrip() + "\n"


def to_csv(t: Table) -> str:
    """One row per table row; each column as mean, std and n (number of seeds), then the gap."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["source"] + t.label_headers
    for c in t.columns:
        head += [c, f"{c} std", f"{c} n"]
    head.append(f"delta vs paper ({t.gap_column})" if t.gap_column else "delta vs paper")
    w.writerow(head)
    for r in t.rows:
        row = [r.source] + list(r.labels)
        for c in r.cells:
            row += ["", "", ""] if c is None else [f"{c.mean:.4f}", "" if c.std is None else f"{c.std:.4f}",
                                                   "" if c.n is None else c.n]
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
        for i, c in enumerate(cells):
            tag = "th" if i < n_labels else "td"
            parts.append(f"<{tag}>{e(c)}</{tag}>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    if t.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.notes) + "</ul>")
    return "".join(parts)
