"""``clipood report RUNS_DIR``: every finished run under a folder, as the paper's tables and plots.

Writes into OUT (default RUNS_DIR/report): ``report.md`` and ``index.html`` (tables and
plots on one page), ``tables/*.csv`` (each table; mean, std and number of seeds per
cell), ``runs.csv`` (every evaluation of every run) and ``plots/*.png``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ClipoodError
from ..io import write_text
from . import plots as P
from .layouts import all_tables, reference_tables
from .page import figure, page, paragraph
from .records import RunRecord, add_derived_zeroshot, collect
from .reference import citation
from .render import to_csv, to_html, to_markdown
from .selection import MODES, SelectionInfo, select
from .table import Table, file_key, label

__all__ = ["Report", "build_report"]


@dataclass
class Report:
    out_dir: Path
    html_path: Path
    markdown: str
    summary_markdown: str  # the main tables only (what `clipood sweep` prints)
    tables: dict[str, list[Table]]  # selection mode -> tables
    selections: dict[str, SelectionInfo]
    plots: list[Path] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)


def _runs_csv(records: list[RunRecord], selected: dict[str, set[int]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "method", "holdout", "base_to_new", "seed", "variant", "run", "split", "role", "n",
                "accuracy", "base", "new", "H"] + [f"selected ({m})" for m in MODES])
    for r in records:
        for name, e in r.evals.items():
            w.writerow([r.dataset, r.method, "+".join(r.holdout), r.base_to_new, r.seed,
                        json.dumps(r.variant, sort_keys=True), str(r.path) + (" (zero-shot eval)" if r.derived else ""),
                        name, e.get("role"), e.get("n"), e.get("accuracy"), e.get("base"), e.get("new"), e.get("H")]
                       + [id(r) in selected.get(m, set()) for m in MODES])
    return buf.getvalue()


def _step_weight_params(records: list[RunRecord]) -> tuple[int, float, float]:
    """T, beta and the EMA decay of the runs (the paper's defaults where no run says)."""
    trained = [r for r in records if r.kind == "train" and r.hparams.get("steps")]
    bma = [r for r in trained if r.hparams.get("averaging") == "bma"]
    ema = [r for r in trained if r.hparams.get("averaging") == "ema"]
    steps = max((int(r.hparams["steps"]) for r in (bma or trained)), default=5000)
    beta = float(bma[0].hparams["beta"]) if bma else 0.5
    decay = float(ema[0].hparams["ema_decay"]) if ema else 0.999
    return steps, beta, decay


def build_report(runs_dir: Path, out_dir: Optional[Path] = None, *, make_plots: bool = True,
                 progress: bool = False) -> Report:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ClipoodError(f"report: folder not found: {runs_dir}")
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    records = collect(runs_dir, exclude=out_dir)
    if not records:
        raise ClipoodError(f"report: no finished runs under {runs_dir} (no results.json); run 'clipood train' or "
                           f"'clipood sweep' first")
    records = add_derived_zeroshot(records)

    tables: dict[str, list[Table]] = {}
    infos: dict[str, SelectionInfo] = {}
    selected_ids: dict[str, set[int]] = {}
    primary_records: list[RunRecord] = []
    for mode in MODES:
        chosen, info = select(records, mode)
        if mode == MODES[0]:
            primary_records = chosen
        if mode != MODES[0] and info.groups_with_choice == 0:
            continue  # nothing to choose: the oracle tables would repeat the first ones
        infos[mode] = info
        selected_ids[mode] = {id(r) for r in chosen}
        ts = all_tables(chosen, info.statement())
        if mode != MODES[0]:
            for t in ts:
                t.key += "_oracle"
                t.title += " (oracle selection)"
        tables[mode] = ts
    primary = tables[MODES[0]]

    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    for ts in tables.values():
        for t in ts:
            write_text(out_dir / "tables" / f"{t.key}.csv", to_csv(t))
    refs = reference_tables()
    for t in refs:
        write_text(out_dir / "tables" / f"{t.key}.csv", to_csv(t))
    write_text(out_dir / "runs.csv", _runs_csv(records, selected_ids))

    figures: list[tuple[Path, str]] = []
    if make_plots:
        figures = _plots(records, primary_records, primary, out_dir / "plots")

    n_runs = len({r.path for r in records if not r.derived})
    datasets = sorted({r.dataset for r in records})
    methods = [label(m) for m in dict.fromkeys(r.method for r in records)]
    intro = [f"Runs: {n_runs} finished run(s) under `{runs_dir}`; datasets: {', '.join(datasets)}; "
             f"methods: {', '.join(methods)}.",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `clipood report`. Accuracy in %, mean ± std over seeds.",
             f"Published reference numbers: {citation()}."]
    selection_lines = [infos[m].statement() for m in infos]

    md = ["# clipood report", ""] + intro + ["", *[f"**{s}**" for s in selection_lines], ""]
    md += ["## Results (training-domain validation)" if len(tables) > 1 else "## Results", ""]
    md += [to_markdown(t) for t in primary]
    if MODES[1] in tables:
        md += ["## Results (oracle selection)", ""] + [to_markdown(t) for t in tables[MODES[1]]]
    if figures:
        md += ["## Figures", ""] + [f"![{c}](plots/{p.name})\n\n{c}\n" for p, c in figures]
    md += ["## Published reference (CLIPood paper)", "", f"Source: {citation()}.", ""]
    md += [to_markdown(t) for t in refs]
    md += ["Files: `tables/*.csv` (every table), `runs.csv` (every evaluation of every run), `plots/*.png`."]
    markdown = "\n".join(md).rstrip() + "\n"
    write_text(out_dir / "report.md", markdown)
    summary = "\n".join([*selection_lines, ""] + [to_markdown(t) for t in primary])

    e = html.escape
    blocks = ["<h1>clipood report</h1>"] + [paragraph(x) for x in intro]
    blocks += [paragraph(s, "selection") for s in selection_lines]
    blocks.append('<section id="results"><h2>Results</h2>' + "".join(to_html(t) for t in primary) + "</section>")
    if MODES[1] in tables:
        blocks.append('<section id="oracle"><h2>Results (oracle selection)</h2>'
                      + "".join(to_html(t) for t in tables[MODES[1]]) + "</section>")
    if figures:
        blocks.append('<section id="figures"><h2>Figures</h2>' + "".join(figure(p, c) for p, c in figures)
                      + "</section>")
    blocks.append(f'<section id="reference"><h2>Published reference (CLIPood paper)</h2><p>Source: {e(citation())}.'
                  f"</p>" + "".join(to_html(t) for t in refs) + "</section>")
    html_path = out_dir / "index.html"
    write_text(html_path, page("clipood report", blocks))
    return Report(out_dir=out_dir, html_path=html_path, markdown=markdown, summary_markdown=summary, tables=tables,
                  selections=infos, plots=[p for p, _ in figures], records=records)


def _plots(records: list[RunRecord], selected: list[RunRecord], primary: list[Table],
           plot_dir: Path) -> list[tuple[Path, str]]:
    """Figures from the selected runs (bars, curves) and from all runs (hyper-parameter and alpha sweeps)."""
    figs: list[tuple[Path, str]] = []

    def add(path: Optional[Path], caption: str) -> None:
        if path is not None:
            figs.append((path, caption))

    for t in primary:
        if t.kind in ("table1", "table2") or (t.kind == "table1-summary" and len(t.columns) > 2):
            marks = "; black marks: the paper's number for the same method" if any(r.method for r in t.paper) else ""
            add(P.bars(t, plot_dir / f"bars_{t.key}.png"), f"{t.title}: mean over seeds, error bars ± std{marks}.")
        elif t.kind == "table4":
            for split in ("Base", "New", "Total"):
                add(P.bars(t, plot_dir / f"bars_{t.key}_{split.lower()}.png", split=split),
                    f"{t.title}, {split} classes: mean over seeds, error bars ± std; black marks: the paper.")
        elif t.kind == "table3":
            add(P.bars(t, plot_dir / f"bars_{t.key}.png"), f"{t.title}: mean over seeds, error bars ± std.")
    for ds in sorted({r.dataset for r in records}):
        add(P.training_curves(selected, ds, plot_dir / f"curves_{file_key(ds)}.png"),
            f"{ds}: train loss and held-out accuracy against the step (mean over the selected runs ± std; accuracy "
            f"at step 0 is "
            f"the zero-shot model, then every --eval-every steps and the final model).")
    T, beta, decay = _step_weight_params(records)
    add(P.step_weights(T, beta, decay, plot_dir / "step_weights.png"),
        f"Weight of each step's model theta_t in the final model over T = {T} steps (paper Fig. 4): BMA (Eq. 6) keeps "
        f"the pre-trained theta_0 and the last steps heavy; under EMA theta_0's share decays as decay^T.")
    for name in ("lambda", "beta"):
        add(P.hparam_plot(records, name, plot_dir / f"vs_{name}.png"),
            f"Held-out accuracy against {name} (all runs, before selection).")
    add(P.wise_ft_plot(records, plot_dir / "wise_ft.png"),
        "WiSE-FT: accuracy of the interpolated weights against alpha.")
    return figs
