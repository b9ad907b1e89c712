"""report.tex: booktabs tables of the same numbers, every special character escaped."""

from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess

import pytest
from fakes import PACS, _domainbed_runs, _entry, _write_run

from clipood.reporting import build_report
from clipood.reporting.render import escape


def test_escape_prints_text_verbatim():
    assert escape(r"a_b & 50% #1 $x {y} ~z ^w \q") == \
        r"a\_b \& 50\% \#1 \$x \{y\} \textasciitilde{}z \textasciicircum{}w \textbackslash{}q"
    assert escape("67.1 ± 2.0, Δ −3, λ") == r"67.1 $\pm$ 2.0, $\Delta$ $-$3, $\lambda$"
    assert escape("plain text 1.5") == "plain text 1.5"


def _tabulars(tex: str) -> list[tuple[str, list[str]]]:
    return [(m.group(1), m.group(2).strip().splitlines())
            for m in re.finditer(r"\\begin\{tabular\}\{([lr]+)\}\n(.*?)\\end\{tabular\}", tex, re.S)]


def test_report_tex_has_the_tables_with_escaped_names(tmp_path):
    _domainbed_runs(tmp_path / "runs", random.Random(0), held_out=tuple(PACS), seeds=(0, 1))
    odd = "Lab_50% & #1"  # a dataset name full of LaTeX specials
    for seed in (0, 1):
        _write_run(tmp_path / "runs", f"odd-{seed}", method="clipood", dataset=odd, holdout=("x_y",), seed=seed,
                   variant={}, evals={"x_y/in": _entry("x_y", "in", "test", 0.5 + 0.1 * seed)}, domains=["x_y", "z"],
                   train_domains=["z"])
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False, error="sem")
    tex = report.latex_path.read_text(encoding="utf-8")
    assert tex.startswith(r"\documentclass{article}") and tex.rstrip().endswith(r"\end{document}")
    assert r"\usepackage{booktabs}" in tex
    tabulars = _tabulars(tex)
    n_tables = sum(len(ts) for ts in report.tables.values()) + 4  # + the paper's four
    assert len(tabulars) == n_tables == tex.count(r"\caption{")
    for spec, lines in tabulars:
        assert lines[0] == r"\toprule" and lines[2] == r"\midrule" and lines[-1] == r"\bottomrule"
        rows = [ln for ln in lines if not ln.startswith("\\") or ln.startswith("\\textit")]
        for ln in rows:  # every row has the table's number of cells and ends the row
            assert ln.endswith(r" \\") and len(re.split(r"(?<!\\)&", ln)) == len(spec), ln
    body = re.sub(r"\\[a-zA-Z]+|\\[_&%$#{}]|[{}]|\$", "", tex)  # commands, escaped specials, groups, math
    body = re.sub(r"(?<!\\)&", "", body)  # column separators
    assert not re.search(r"[_%#]", body)  # nothing left unescaped
    assert r"Lab\_50\% \& \#1" in tex and r"x\_y" in tex and r"art\_painting" in tex
    t = next(t for t in report.tables["training-domain"] if t.key == "table1_pacs")
    row = next(r for r in t.ours if r.method == "clipood")
    cell = row.cells[0].fmt("sem").replace("±", r"$\pm$")
    assert cell in tex and "standard error" in tex  # the same numbers, and what ± is
    if shutil.which("pdflatex"):
        out = tmp_path / "pdf"
        out.mkdir()
        res = subprocess.run(["pdflatex", "-interaction=nonstopmode", f"-output-directory={out}",
                              str(report.latex_path)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and (out / "report.pdf").is_file(), res.stdout[-2000:]


def test_sem_is_the_standard_error_of_the_sample_std(tmp_path):
    truth = _domainbed_runs(tmp_path / "runs", random.Random(3), held_out=tuple(PACS), seeds=(0, 1, 2))
    std = build_report(tmp_path / "runs", tmp_path / "std", make_plots=False)
    sem = build_report(tmp_path / "runs", tmp_path / "sem", make_plots=False, error="sem")
    t_std, t_sem = (next(t for t in r.tables["training-domain"] if t.key == "table1_pacs") for r in (std, sem))
    erm = [100 * truth[("erm-linear", "sketch", s, None)]["test"] for s in (0, 1, 2)]
    mean, sd = statistics.fmean(erm), statistics.stdev(erm)
    i = t_sem.columns.index("sketch")
    row = next(r for r in t_sem.ours if r.method == "erm-linear")
    assert row.cells[i].sem == pytest.approx(sd / 3 ** 0.5)
    assert row.cells[i].fmt(t_sem.error) == f"{mean:.1f} ± {sd / 3 ** 0.5:.1f}"
    assert next(r for r in t_std.ours if r.method == "erm-linear").cells[i].fmt(t_std.error) == f"{mean:.1f} ± {sd:.1f}"
    assert any("mean ± standard error (sample std / √n" in n for n in t_sem.notes)
    assert any("mean ± std (sample standard deviation" in n for n in t_std.notes)
    paper = next(r for r in t_sem.paper if r.labels == ["paper: ERM (CLIP)"])
    assert paper.cells[-1].fmt("sem") == f"96.1 ± {0.5 / 3 ** 0.5:.1f}"  # the paper's std over its 3 runs
    assert any("standard error of the published std" in n for n in t_sem.notes)
    assert "mean ± standard error" in sem.markdown and "| sketch" in sem.markdown
