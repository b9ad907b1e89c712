"""Report figures from the tables and runs (PNG, matplotlib's Agg renderer; no display needed).

* per-domain bars: each method's number per column of a table, its ± (std or standard
  error, as the table) as error bars, the paper's numbers as black marks where the table
  has them;
* accuracy against lambda (Eq. 4) and against beta (Eq. 6) when runs vary them;
* WiSE-FT: accuracy against the interpolation coefficient alpha.

Curves against the step are in ``curves``. Each function returns the figure with a caption
that describes what was drawn, and only that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure  # drawn without pyplot: the Agg renderer, no display, no global state

from ..methods import WISE_FT, registered
from .curves import MIN_CURVE_POINTS, PALETTE, Plot, color, save, series_plot
from .records import HYPERPARAMETERS, RunRecord
from .shown import METRIC, shown_kind, shown_value
from .stats import mean
from .table import Table, label

__all__ = ["HPARAMS", "axis_top", "bars", "hparam_plot", "hparam_series", "paper_marks", "wise_ft_plot"]


def axis_top(highest: float) -> float:
    """Top of an accuracy axis (%): a round number 10 % above the highest bar or mark, at most
    100, so that accuracies of a few percent stay readable rather than flat on a 0-100 axis."""
    target = min(100.0, max(highest, 0.1) * 1.1)
    magnitude = 10.0 ** math.floor(math.log10(target))
    return min(100.0, next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= target))


def paper_marks(table: Table, split: Optional[str] = None) -> int:
    """How many black marks ``bars`` draws: the paper's cells of a method that has a bar."""
    ours = {r.method for r in table.ours if split is None or r.labels[0] == split}
    return sum(c is not None for p in table.paper if (split is None or p.labels[0] == split) and p.method in ours
               for c in p.cells)


def bars(table: Table, path: Path, *, split: Optional[str] = None) -> Optional[Plot]:
    """Grouped bars: one group per column of ``table``, one bar per method (Table 4: rows of one split)."""
    ours = [r for r in table.ours if split is None or r.labels[0] == split]
    paper = [r for r in table.paper if split is None or r.labels[0] == split]
    if not ours or not table.columns:
        return None
    n_cols, n_rows = len(table.columns), len(ours)
    width = 0.8 / n_rows
    fig = Figure(figsize=(max(6.0, 0.35 * n_cols * n_rows + 2.5), 4.2))
    ax = fig.add_subplot()
    highest, any_error = 0.0, False
    for i, r in enumerate(ours):
        xs = [c + (i - (n_rows - 1) / 2) * width for c in range(n_cols)]
        means = [c.mean if c else 0.0 for c in r.cells]
        errs = [(c.error(table.error) or 0.0) if c else 0.0 for c in r.cells]
        any_error = any_error or any(e > 0 for e in errs)
        ax.bar(xs, means, width * 0.95, yerr=errs, capsize=2, label=r.labels[-1], color=color(r.method or ""))
        highest = max([highest] + [m + e for m, e in zip(means, errs)])
        for p in paper:
            if p.method == r.method:
                pts = [(x, c.mean) for x, c in zip(xs, p.cells) if c is not None]
                if pts:
                    ax.scatter(*zip(*pts), marker="_", s=250, color="black", linewidths=2, zorder=3)
                    highest = max([highest] + [y for _, y in pts])
    marks = paper_marks(table, split)
    if marks:
        ax.scatter([], [], marker="_", s=250, color="black", linewidths=2, label="paper (same method)")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(table.columns, rotation=20 if n_cols > 5 else 0, ha="right" if n_cols > 5 else "center")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, axis_top(highest))
    ax.set_title(table.title + (f" ({split})" if split else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    what = "standard error" if table.error == "sem" else "std"
    caption = f"{table.title}{f', {split} classes' if split else ''}: bars are the mean over seeds"
    caption += f", error bars ± {what}" if any_error else " (one seed per bar: no error bars)"
    caption += f"; black marks: the paper's number for the same method ({marks})." if marks else \
        "; no paper number is drawn (none is comparable here)."
    return Plot(save(fig, path), caption)


def _relevant(registry, param):
    return lambda r: r.hparams.get(registry.section) in registry.users(param.name)


# The numeric hyper-parameters of the registries (losses, averagers) a plot draws accuracy against when runs vary
# them: option name -> (axis title, default, whether a run's loss or averager reads it).
HPARAMS = {p.option: (p.label or p.option, p.default, _relevant(reg, p)) for _, p, reg in HYPERPARAMETERS
           if p.variant and p.numeric}


def hparam_series(records: list[RunRecord], name: str) -> dict[tuple[str, str, str], dict[float, list[float]]]:
    """(dataset, method, table kind) -> value -> per-seed number its table shows (%, mean over held-out domains),
    for options with at least two values."""
    _, _, relevant = HPARAMS[name]
    grouped: dict[tuple[str, str, str], dict[float, dict[int, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        v, kind = r.hparams.get(name), shown_kind(r)
        if r.kind != "train" or v is None or not relevant(r) or kind is None:
            continue
        x = shown_value(r)
        if not math.isnan(x):
            grouped[(r.dataset, r.method, kind)][float(v)][r.seed].append(100 * x)
    out = {}
    for k, by_value in grouped.items():
        if len(by_value) >= 2:
            out[k] = {v: [mean(xs) for xs in seeds.values()] for v, seeds in sorted(by_value.items())}
    return out


def _joined(drawn: dict[str, bool]) -> str:
    """The caption's part on lines: which series are joined and which are points only."""
    points = [k for k, curve in drawn.items() if not curve]
    text = f" Points are joined only from {MIN_CURVE_POINTS} values on"
    return text + (f"; {', '.join(points)}: fewer, drawn as points (no trend from two)." if points else ".")


def hparam_plot(records: list[RunRecord], name: str, path: Path) -> Optional[Plot]:
    series = hparam_series(records, name)
    if not series:
        return None
    title, default, _ = HPARAMS[name]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    drawn = {}
    for (ds, m, kind), by_value in series.items():
        key = f"{ds}: {label(m)}" + (f" ({METRIC[kind]})" if len({k for *_, k in series}) > 1 else "")
        drawn[key] = series_plot(ax, by_value, label=key, color=color(m))
    ax.axvline(default, color="black", linestyle=":", linewidth=1, label=f"default {default:g}")
    metrics = sorted({METRIC[k] for *_, k in series})
    ax.set_xlabel(title)
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "the table's number (%)")
    ax.set_title(f"Against {name} (mean ± std over seeds; other options marginalised)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    caption = (f"{' / '.join(m.replace(' (%)', '') for m in metrics).capitalize()} against {name} (all runs, before "
               f"selection; mean ± std over seeds); dotted line: the default {default:g} (docs/configuration.md)."
               + _joined(drawn))
    return Plot(save(fig, path), caption)


def wise_ft_plot(records: list[RunRecord], path: Path) -> Optional[Plot]:
    """WiSE-FT: the table's number and training-domain validation accuracy against alpha (0: zero-shot, 1: tuned)."""
    from .selection import score
    recs = [r for r in records if registered(r.method) == WISE_FT and "alpha" in r.variant and shown_kind(r)]
    if not recs:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    drawn = {}
    for i, ds in enumerate(sorted({r.dataset for r in recs})):
        for what, fn, style in (("test", shown_value, "-"),
                                ("training-domain val", lambda r: score(r, "training-domain"), "--")):
            by_alpha: dict[float, list] = defaultdict(list)
            for r in recs:
                x = fn(r)
                if r.dataset == ds and not math.isnan(x):
                    by_alpha[float(r.variant["alpha"])].append(100 * x)
            if by_alpha:
                drawn[f"{ds}: {what}"] = series_plot(ax, by_alpha, linestyle=style, color=PALETTE[i % len(PALETTE)],
                                                     label=f"{ds}: {what}")
    ax.set_xlabel("alpha (0: zero-shot weights, 1: fine-tuned weights)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("WiSE-FT weight interpolation (mean ± std over runs)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    metrics = sorted({METRIC[shown_kind(r)] for r in recs})
    caption = ("WiSE-FT: accuracy of the interpolated weights against alpha, solid: "
               f"{' / '.join(m.replace(' (%)', '') for m in metrics)} (the tables' number), dashed: training-domain "
               "validation accuracy; mean ± std over runs." + _joined(drawn))
    return Plot(save(fig, path), caption)
