"""The report's tables and page in their formats: a ``Table`` as markdown, CSV, HTML and LaTeX, and
the one self-contained HTML page.

LaTeX (booktabs), for a paper: ``report.tex`` compiles on its own (``pdflatex report.tex``) and
each ``tabular`` can be pasted into a paper that loads booktabs. Text is escaped (``& % $ # _ { } ~ ^ \\``
and the report's ±, Δ, −, λ, √), so dataset, domain and method names are printed as they are written,
never read as LaTeX.

The page: tables, and the plots embedded as PNG data. Cells never wrap (a method name or 'mean ± std'
on one line); a table wider than the page scrolls sideways inside its own box. A small script marks the
page once every image has decoded (``data-images-ok`` on <body>, and ``data-rendered="ok"``), so a
headless browser can check that it renders.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Optional

from .stats import Stat
from .table import Table
from .text import markdown_table

__all__ = ["SCRIPT", "SPECIAL", "STYLE", "body", "document", "escape", "figure", "headers", "page", "paragraph",
           "to_csv", "to_html", "to_latex", "to_markdown", "variants"]


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


# ------------------------------------------------------------------ LaTeX


SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
           ">": r"\textgreater{}", "|": r"\textbar{}", "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$",
           "λ": r"$\lambda$", "√": r"$\surd$", "×": r"$\times$", "–": "--", "—": "---", "…": r"\ldots{}"}


def escape(text: str) -> str:
    """Plain text as LaTeX that prints it verbatim (one character at a time: no double escaping)."""
    return "".join(SPECIAL.get(ch, ch) for ch in str(text))


def _row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def to_latex(t: Table, caption: Optional[str] = None) -> str:
    """A table environment: booktabs rules, label columns left, numbers right, a midrule before the paper's rows;
    the caption is the title and the notes (what ± is, how the paper compares)."""
    n_labels = len(t.label_headers)
    cols = "l" * n_labels + "r" * (len(headers(t)) - n_labels)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small", r"\begin{tabular}{" + cols + "}", r"\toprule",
             _row([escape(h) for h in headers(t)]), r"\midrule"]
    previous = None
    for r, cells in zip(t.rows, body(t)):
        if previous == "ours" and r.source == "paper":
            lines.append(r"\midrule")
        previous = r.source
        vs = [None] * n_labels + variants(t, r) + [None]
        texts = [escape(c) + (r" {\scriptsize (" + escape(v) + ")}" if v else "") for c, v in zip(cells, vs)]
        if t.has_gap() and texts[-1]:
            texts[-1] = f"${texts[-1]}$"  # a signed number: a minus sign, not a hyphen
        if r.source == "paper":
            texts = [r"\textit{" + x + "}" if x and x != "-" else x for x in texts]
        lines.append(_row(texts))
    lines += [r"\bottomrule", r"\end{tabular}",
              r"\caption{" + escape(caption if caption is not None else " ".join([t.title + "."] + t.notes)) + "}",
              r"\label{tab:" + t.key.replace("_", "-") + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def document(sections: list[tuple[str, list[str], list[Table]]], preamble: list[str]) -> str:
    """A standalone article: one section (title, paragraphs, tables) per selection and the paper's tables."""
    out = [r"\documentclass{article}", r"\usepackage[margin=2cm,landscape]{geometry}", r"\usepackage{booktabs}",
           r"\usepackage[T1]{fontenc}", r"\begin{document}", ""]
    out += [escape(p) + "\n" for p in preamble]
    for title, paragraphs, tables in sections:
        out += [r"\section*{" + escape(title) + "}", ""] + [escape(p) + "\n" for p in paragraphs]
        out += [to_latex(t) for t in tables]
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ the HTML page


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; padding: 0 1em; }
code { background: #f4f4f4; padding: 0 0.2em; }
/* A wide table scrolls inside its own box instead of widening the page. */
div.scroll { overflow-x: auto; max-width: 100%; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05em; }
table.results, table.settings { border-collapse: collapse; margin: 1em 0 0.3em; font-size: 0.9em; }
table.results th, table.results td, table.settings th, table.settings td { border: 1px solid #ccc;
       padding: 0.25em 0.6em; text-align: right; white-space: nowrap; vertical-align: top; }
table.results th, table.settings th { background: #f4f4f4; text-align: left; }
table.settings td { text-align: left; }
table.results tr.paper th, table.results tr.paper td { color: #555; font-style: italic; background: #fafaf0; }
table.results span.variant { display: block; font-size: 0.8em; color: #2a5d8f; }
ul.notes { font-size: 0.82em; color: #555; margin-top: 0.2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; }
p.selection { background: #eef4fb; padding: 0.6em 0.8em; border-left: 4px solid #4c72b0; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-ok', ok + '/' + imgs.length);
  document.body.setAttribute('data-tables', String(document.querySelectorAll('table.results').length));
  document.body.setAttribute('data-rendered', ok === imgs.length ? 'ok' : 'broken');
});
"""


def figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    e = html.escape
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}" data-file="{e(Path(path).name)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>")


def paragraph(text: str, cls: str = "") -> str:
    """Escaped text; `code` spans (markdown backticks) become <code>."""
    parts = html.escape(text).split("`")
    inner = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return f'<p class="{cls}">{inner}</p>' if cls else f"<p>{inner}</p>"


def page(title: str, blocks: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body data-rendered=\"pending\">\n" + "\n".join(blocks)
            + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
