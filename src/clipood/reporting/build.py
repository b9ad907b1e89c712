"""``clipood report RUNS_DIR``: every finished run under a folder, as the paper's tables and plots.

Writes into OUT (default RUNS_DIR/report): ``index.html`` (settings, tables and plots on
one page), ``report.md`` (the same in markdown), ``report.tex`` (the tables as booktabs
LaTeX), ``tables/*.csv`` (each table; mean, std, standard error, number of seeds and the
selected variant per cell), ``runs.csv`` (every evaluation of every run) and ``plots/*.png``.
Each model selection is stated once, at the top of its results, after the settings: what the runs
were (backbone, weights, steps, learning rate, batch, the hyper-parameters of their loss and averager
from the registries, seeds per dataset and method), from each run's config.yaml (else results.json),
shown beside the results because the paper's ViT-B/16 numbers stand next to them and a reader must
see what differs.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ClipoodError
from ..io import write_text
from . import figures as F
from .layouts import all_tables, in_no_table, paired_runs, reference_tables
from .records import HYPERPARAMETERS, RunRecord, add_derived_zeroshot, collect, shown_kind
from .reference import citation
from .reference import settings as paper_settings
from .render import document, figure, page, paragraph, to_csv, to_html, to_markdown
from .selection import MODES, SelectionInfo, select
from .stats import ERROR_TEXT, ERRORS
from .table import Table, datasets_of, file_key, label, methods_of
from .text import markdown_table

__all__ = ["HEADERS", "Report", "build_report", "paper_line", "settings_html", "settings_markdown", "settings_rows"]


SUFFIX = {"training-domain": "", "leave-one-out": "_loo", "oracle": "_oracle"}


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
    latex_path: Optional[Path] = None


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
    decay = float(ema[0].hparams["ema-decay"]) if ema else 0.999
    return steps, beta, decay


def _select_all(records: list[RunRecord], error: str):
    """Per selection: the chosen records' tables. Selections other than the first appear only where there was a
    choice; leave-one-out's statement stays (saying what is missing) even when it fills no cell."""
    tables: dict[str, list[Table]] = {}
    infos: dict[str, SelectionInfo] = {}
    selected_ids: dict[str, set[int]] = {}
    primary_records: list[RunRecord] = []
    for mode in MODES:
        chosen, info = select(records, mode)
        if mode == MODES[0]:
            primary_records = chosen
        elif info.groups_with_choice == 0:
            continue  # nothing to choose: its tables would repeat the first ones
        infos[mode] = info
        selected_ids[mode] = {id(r) for r in chosen}
        if mode != MODES[0] and not info.variant_of:
            tables[mode] = []  # no cell with a choice could be selected this way: the statement says why
            continue
        ts = all_tables(chosen, info.variant_of, error)
        for t in ts:
            t.key += SUFFIX[mode]
            t.title += f" ({info.title})" if mode != MODES[0] else ""
        tables[mode] = ts
    return tables, infos, selected_ids, primary_records


def build_report(runs_dir: Path, out_dir: Optional[Path] = None, *, make_plots: bool = True,
                 progress: bool = False, error: str = "std") -> Report:
    """``error``: what ± shows, the sample std over seeds ('std') or the standard error ('sem')."""
    if error not in ERRORS:
        raise ClipoodError(f"report: --error {error!r} is not one of {', '.join(ERRORS)}")
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ClipoodError(f"report: folder not found: {runs_dir}")
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    records = collect(runs_dir, exclude=out_dir)
    if not records:
        raise ClipoodError(f"report: no finished runs under {runs_dir} (no results.json); run 'clipood train' or "
                           f"'clipood sweep' first")
    records = add_derived_zeroshot(records)
    tables, infos, selected_ids, primary_records = _select_all(records, error)
    primary = tables[MODES[0]]

    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    for ts in tables.values():
        for t in ts:
            write_text(out_dir / "tables" / f"{t.key}.csv", to_csv(t))
    refs = reference_tables()
    for t in refs:
        write_text(out_dir / "tables" / f"{t.key}.csv", to_csv(t))
    write_text(out_dir / "runs.csv", _runs_csv(records, selected_ids))

    figures: list[F.Plot] = []
    if make_plots:
        figures = _plots(records, primary_records, primary, out_dir / "plots")

    n_runs = len({r.path for r in records if not r.derived})
    datasets = sorted({r.dataset for r in records})
    methods = [label(m) for m in dict.fromkeys(r.method for r in records)]
    intro = [f"Runs: {n_runs} finished run(s) under `{runs_dir}`; datasets: {', '.join(datasets)}; "
             f"methods: {', '.join(methods)}.",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `clipood report`. Accuracy in %, {ERROR_TEXT[error]} "
             f"over seeds.",
             f"Published reference numbers: {citation()}."]
    shown = [r for r in records if not r.derived]
    if paired := {r.path for r in paired_runs(shown)}:
        intro.append(f"{len(paired)} of the runs hold out two domains beside runs that hold out each alone: "
                     f"leave-one-domain-out's paired runs, which score that selection and are in no table.")
    if unplaced := sorted({str(r.path.name) for r in in_no_table(shown)}):
        intro.append(f"In no table ({len(unplaced)}: base-to-new with several held-out domains, a layout the paper "
                     f"has not): {', '.join(unplaced)}; their numbers are in runs.csv.")
    sections = [(f"Results ({infos[m].title})" if len(infos) > 1 else "Results", infos[m].statement(), tables[m], m)
                for m in infos]

    md = ["# clipood report", ""] + intro + ["", "## Settings", "", settings_markdown(primary_records)]
    for title, statement, ts, _ in sections:
        md += [f"## {title}", "", f"**{statement}**", ""] + [to_markdown(t) for t in ts]
    if figures:
        md += ["## Figures", ""] + [f"![{f.caption}](plots/{f.path.name})\n\n{f.caption}\n" for f in figures]
    md += ["## Published reference (CLIPood paper)", "", f"Source: {citation()}.", ""]
    md += [to_markdown(t) for t in refs]
    md += ["Files: `report.tex` (the tables in LaTeX), `tables/*.csv` (every table), `runs.csv` (every evaluation "
           "of every run), `plots/*.png`."]
    markdown = "\n".join(md).rstrip() + "\n"
    write_text(out_dir / "report.md", markdown)
    summary = "\n".join([infos[MODES[0]].statement(), ""] + [to_markdown(t) for t in primary])
    latex_path = out_dir / "report.tex"
    write_text(latex_path, document([(title, [statement], ts) for title, statement, ts, _ in sections]
                                    + [("Published reference (CLIPood paper)", [f"Source: {citation()}."], refs)],
                                    ["clipood report", *intro]))

    e = html.escape
    blocks = ["<h1>clipood report</h1>"] + [paragraph(x) for x in intro]
    blocks.append(f'<section id="settings"><h2>Settings</h2>{settings_html(primary_records)}</section>')
    for title, statement, ts, mode in sections:
        blocks.append(f'<section id="{"results" if mode == MODES[0] else mode}"><h2>{e(title)}</h2>'
                      + paragraph(statement, "selection") + "".join(to_html(t) for t in ts) + "</section>")
    if figures:
        blocks.append('<section id="figures"><h2>Figures</h2>' + "".join(figure(f.path, f.caption) for f in figures)
                      + "</section>")
    blocks.append(f'<section id="reference"><h2>Published reference (CLIPood paper)</h2><p>Source: {e(citation())}.'
                  f"</p>" + "".join(to_html(t) for t in refs) + "</section>")
    html_path = out_dir / "index.html"
    write_text(html_path, page("clipood report", blocks))
    return Report(out_dir=out_dir, html_path=html_path, markdown=markdown, summary_markdown=summary, tables=tables,
                  selections=infos, plots=[f.path for f in figures], records=records, latex_path=latex_path)


def _plots(records: list[RunRecord], selected: list[RunRecord], primary: list[Table],
           plot_dir: Path) -> list[F.Plot]:
    """Figures from the selected runs (bars, curves) and from all runs (hyper-parameter and alpha sweeps)."""
    figs: list[F.Plot] = []

    def add(fig: Optional[F.Plot]) -> None:
        if fig is not None:
            figs.append(fig)

    for t in primary:
        if t.kind in ("table1", "table2", "table3") or (t.kind == "table1-summary" and len(t.columns) > 2):
            add(F.bars(t, plot_dir / f"bars_{t.key}.png"))
        elif t.kind == "table4":
            for split in ("Base", "New", "Total"):
                add(F.bars(t, plot_dir / f"bars_{t.key}_{split.lower()}.png", split=split))
    for ds in sorted({r.dataset for r in records}):
        kinds = list(dict.fromkeys(shown_kind(r) for r in selected if r.dataset == ds and shown_kind(r)))
        for i, kind in enumerate(kinds):
            add(F.training_curves(selected, ds, kind, plot_dir / f"curves_{file_key(ds)}{'' if i == 0 else '_' + kind}"
                                                                 f".png"))
    T, beta, decay = _step_weight_params(records)
    add(F.step_weights(T, beta, decay, plot_dir / "step_weights.png"))
    for name in F.HPARAMS:
        add(F.hparam_plot(records, name, plot_dir / f"vs_{name}.png"))
    add(F.wise_ft_plot(records, plot_dir / "wise_ft.png"))
    return figs


# ------------------------------------------------------------------ settings: what the runs were


HEADERS = ["dataset", "method", "backbone", "weights", "steps", "lr", "batch", "hyper-parameters", "seeds", "runs"]


def _values(values: list[Any], fmt=str) -> str:
    """Distinct values in order of first appearance ('-' when no run says)."""
    seen = list(dict.fromkeys(fmt(v) for v in values if v is not None))
    return ", ".join(seen) or "-"


def _batch(r: RunRecord) -> Any:
    b = r.hparams.get("batch_size")
    if b is None:
        return None
    n = len(r.train_domains)
    text = f"{b} × {n} domains" if n > 1 else str(b)
    accum = r.hparams.get("accum_steps")
    return text + (f" ({accum} micro-batches)" if accum and int(accum) > 1 else "")


def _hyperparameters(runs: list[RunRecord]) -> str:
    """The values of the hyper-parameters the runs' losses and averagers read (their registries), e.g.
    'lambda 0.3, beta 0.1 / 0.5' where runs differ."""
    parts = []
    for _, p, reg in HYPERPARAMETERS:
        values = [r.hparams.get(p.option) for r in runs
                  if p.variant and r.hparams.get(reg.section) in reg.users(p.name)]
        shown = _values(values, lambda v: f"{v:g}" if isinstance(v, float) else str(v))
        if shown != "-":
            parts.append(f"{p.option} {shown.replace(', ', ' / ')}")
    return ", ".join(parts) or "-"


def settings_rows(records: list[RunRecord]) -> list[list[str]]:
    """One row per (dataset, method): the distinct values of its runs (a sweep's variants list several)."""
    rows = []
    for ds in datasets_of(records):
        dr = [r for r in records if r.dataset == ds]
        for m in methods_of(dr):
            mr = [r for r in dr if r.method == m]
            trained = [r for r in mr if r.kind != "zeroshot"]
            by_seed: dict[int, int] = defaultdict(int)
            for r in mr:
                by_seed[r.seed] += 1
            steps = _values([r.hparams.get("steps") for r in trained]) if trained else "0 (pre-trained model)"
            rows.append([ds, label(m), _values([r.hparams.get("arch") for r in mr]),
                         _values([r.hparams.get("pretrained") for r in mr]), steps,
                         _values([r.hparams.get("lr") for r in trained], lambda v: f"{float(v):g}"),
                         _values([_batch(r) for r in trained]), _hyperparameters([r for r in mr if r.kind == "train"]),
                         ", ".join(map(str, sorted(by_seed))),
                         str(len({r.path for r in mr if not r.derived}) or "from the training runs")])
    return rows


def paper_line() -> str:
    return f"The paper's numbers beside them: {paper_settings()}."


def settings_markdown(records: list[RunRecord]) -> str:
    return "\n".join([markdown_table(HEADERS, settings_rows(records)), "",
                      f"- {paper_line()} batch: images per training domain per step × training domains."]) + "\n"


def settings_html(records: list[RunRecord]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<{'th' if i < 2 else 'td'}>{e(c)}</{'th' if i < 2 else 'td'}>"
                                    for i, c in enumerate(row)) + "</tr>" for row in settings_rows(records))
    return (f'<div class="scroll"><table class="settings" id="settings"><thead><tr>'
            f'{head}</tr></thead><tbody>{body}</tbody></table></div><ul class="notes"><li>{e(paper_line())} batch: '
            f"images per training domain per step × training domains.</li></ul>")
