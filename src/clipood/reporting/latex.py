"""The report's tables as LaTeX (booktabs), for a paper: ``report.tex`` compiles on its own
(``pdflatex report.tex``) and each ``tabular`` can be pasted into a paper that loads booktabs.

Text is escaped (``& % $ # _ { } ~ ^ \\`` and the report's ±, Δ, −, λ, √), so dataset,
domain and method names are printed as they are written, never read as LaTeX.
"""

from __future__ import annotations

from typing import Optional

from .render import body, headers, variants
from .table import Table

__all__ = ["SPECIAL", "document", "escape", "to_latex"]

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
