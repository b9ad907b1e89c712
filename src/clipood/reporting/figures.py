"""Report figures (PNG, matplotlib's Agg renderer; no display needed), each with a caption that says what was
drawn, and only that.

Against the step:

* training curves: train loss (metrics.jsonl) and the number the run's table shows (``records.shown_value``)
  at every evaluation: the zero-shot model at step 0, every ``--eval-every`` steps, the final model.
  Evaluations are markers; they are joined into a curve only from three on, since a line through two
  points looks like a measured trend it is not.
* step weights (the paper's Fig. 4): the share of each step's weights theta_t in the final model under
  BMA (Eq. 6), EMA and the uniform average, on a log axis: values that are zero (the uniform average's
  theta_0) cannot be drawn there and are left out, as the caption says.

From the tables and runs:

* per-domain bars: each method's number per column of a table, its ± (std or standard error, as the
  table) as error bars, the paper's numbers as black marks where the table has them;
* accuracy against each numeric hyper-parameter of the registries (lambda, Eq. 4; beta, Eq. 6; ...)
  when runs vary it;
* WiSE-FT: accuracy against the interpolation coefficient alpha.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple, Optional

from matplotlib.figure import Figure  # drawn without pyplot: the Agg renderer, no display, no global state

from ..averaging import beta_weights
from ..methods import METHODS, WISE_FT, registered
from .records import HYPERPARAMETERS, METRIC, RunRecord, shown_kind, shown_value
from .stats import mean, stat
from .table import Table, label

__all__ = ["HPARAMS", "MIN_CURVE_POINTS", "PALETTE", "Plot", "axis_top", "bars", "color", "hparam_plot",
           "hparam_series", "paper_marks", "read_metrics", "save", "series_plot", "step_weights", "step_weights_curves",
           "training_curves", "wise_ft_plot"]


# ------------------------------------------------------------------ against the step


MIN_CURVE_POINTS = 3  # fewer evaluations are drawn as points, never joined
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd"]


class Plot(NamedTuple):
    path: Path
    caption: str  # says what is drawn, and only that


def color(method: str) -> str:
    names = list(METHODS)
    i = names.index(method) if method in names else len(names) + sum(map(ord, method))  # WiSE-FT's bases apart
    return PALETTE[i % len(PALETTE)]


def save(fig: Figure, path: Path) -> Path:
    from ..io import atomic_path
    with atomic_path(path) as tmp:  # a full disk names the plot; a half-written one never replaces the last
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight", facecolor="white")
    return path


def read_metrics(path: Path) -> list[dict]:
    """The records of a run's metrics.jsonl; lines that are not one (torn, binary) are left out, and said."""
    if not path.is_file():
        return []
    out, bad = [], 0
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            bad += raw.strip() != b""
            continue
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        if isinstance(rec, dict) and number(rec.get("step", 0)) and number(rec.get("loss", 0)) and \
                isinstance(rec.get("eval", {}), dict):
            out.append(rec)
        else:
            bad += 1
    if bad:
        from ..console import warn
        warn(f"report: {path}: {bad} line(s) that are not metrics records left out of the curves")
    return out


def series_plot(ax, series: dict[float, list[float]], **kw) -> bool:
    """Mean ± std (over runs) at each x: joined with a ±std band from MIN_CURVE_POINTS x values on,
    markers with error bars below that. True when it was drawn as a curve."""
    xs = sorted(series)
    cells = [stat(series[x], scale=1.0) for x in xs]
    pts = [(x, c.mean, c.std or 0.0) for x, c in zip(xs, cells) if c is not None]
    if not pts:
        return False
    px, m, sd = zip(*pts)
    if len(pts) >= MIN_CURVE_POINTS:
        ax.plot(px, m, marker="o" if len(pts) < 30 else None, markersize=3, **kw)
        ax.fill_between(px, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], alpha=0.2,
                        color=kw.get("color"))
        return True
    ax.errorbar(px, m, yerr=sd, linestyle="none", marker="o", markersize=5, capsize=3, **kw)
    return False


def training_curves(records: list[RunRecord], dataset: str, kind: str, path: Path) -> Optional[Plot]:
    """Train loss and the table's number against the step, one series per method (mean ± std over runs)."""
    recs = [r for r in records if r.dataset == dataset and r.kind == "train" and shown_kind(r) == kind]
    loss: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    acc: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if r.zeroshot:
            acc[r.method][0].append(100 * shown_value(r, r.zeroshot))
        for ev in read_metrics(r.metrics_path):
            if "loss" in ev and "step" in ev:
                loss[r.method][int(ev["step"])].append(float(ev["loss"]))
            if isinstance(ev.get("eval"), dict) and "step" in ev:
                acc[r.method][int(ev["step"])].append(100 * shown_value(r, ev["eval"]))
    if not loss:
        return None
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    points_only, curves = [], []
    for m in sorted(loss, key=lambda m: list(METHODS).index(m) if m in METHODS else 99):
        series_plot(ax1, loss[m], label=label(m), color=color(m))
        finite = {s: [v for v in vs if not math.isnan(v)] for s, vs in acc.get(m, {}).items()}
        finite = {s: vs for s, vs in finite.items() if vs}
        if finite:
            (curves if series_plot(ax2, finite, label=label(m), color=color(m)) else points_only).append(
                (label(m), sorted(finite)))
    metric = METRIC[kind]
    ax1.set_xlabel("step")
    ax1.set_ylabel("train loss")
    ax1.set_title(f"{dataset}: training loss", fontsize=10)
    ax2.set_xlabel("step (0: zero-shot model)")
    ax2.set_ylabel(metric)
    ax2.set_title(f"{dataset}: {metric.replace(' (%)', '')} of the (averaged) model", fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    n = len({r.path for r in recs})
    caption = (f"{dataset}: train loss against the step and {metric.replace(' (%)', '')} (the number its table "
               f"shows) at each evaluation, mean over {n} selected run(s)"
               + (" ± std over runs" if n > 1 else "") + ".")
    if curves:
        caption += " Joined markers: " + "; ".join(f"{m} (evaluated at steps {', '.join(map(str, s))})"
                                                   for m, s in curves) + "."
    if points_only:
        caption += (" Points only, not joined, for " + "; ".join(
            f"{m} ({len(s)} evaluation{'s' if len(s) > 1 else ''}: step{'s' if len(s) > 1 else ''} "
            f"{', '.join(map(str, s))})" for m, s in points_only)
            + ": two points are no measured trend; set --eval-every for a curve.")
    if not curves and not points_only:
        caption += " No evaluation of this number was recorded: loss only."
    return Plot(save(fig, path), caption)


def step_weights_curves(total_steps: int, beta: float, ema_decay: float) -> dict[str, list[float]]:
    """Share of theta_t (t = 0..T) in the final average: BMA (Eq. 6, normalised), EMA, uniform."""
    T = total_steps
    a = beta_weights(T, beta)
    s = sum(a)
    bma = [x / s for x in a]
    ema = [ema_decay ** T] + [(1 - ema_decay) * ema_decay ** (T - t) for t in range(1, T + 1)]
    uniform = [0.0] + [1.0 / T] * T
    return {f"BMA (beta = {beta:g})": bma, f"EMA (decay = {ema_decay:g})": ema, "uniform (theta_1..theta_T)": uniform}


def step_weights(total_steps: int, beta: float, ema_decay: float, path: Path) -> Plot:
    """Fig. 4 of the paper: how much each step's model counts in the final average (zeros not drawn)."""
    curves = step_weights_curves(total_steps, beta, ema_decay)
    fig = Figure(figsize=(7.5, 4))
    ax = fig.add_subplot()
    masked = {}
    for (name, w), c in zip(curves.items(), ("#c44e52", "#4c72b0", "#8c8c8c")):
        ax.plot(range(total_steps + 1), [x if x > 0 else math.nan for x in w], label=name, color=c,
                marker="o" if total_steps <= 30 else None, markersize=3)
        zero = [t for t, x in enumerate(w) if x <= 0]
        if zero:
            masked[name] = zero
    positive = [x for w in curves.values() for x in w if x > 0]
    ax.set_yscale("log")
    ax.set_ylim(max(1e-300, min(positive) / 2), 1.0)
    ax.set_xlabel("step t (0: the pre-trained weights)")
    ax.set_ylabel("weight of theta_t in the final model")
    ax.set_title(f"Step weights of the averages over T = {total_steps} steps (paper Fig. 4)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    caption = (f"Weight of each step's model theta_t in the final model over T = {total_steps} steps (paper Fig. 4), "
               f"log axis: BMA (Eq. 6) keeps the pre-trained theta_0 and the last steps heavy; under EMA theta_0's "
               f"share decays as decay^T.")
    for name, zero in masked.items():
        steps = ", ".join(map(str, zero[:5])) + (", ..." if len(zero) > 5 else "")
        caption += (f" {name.split(' (')[0]} gives step{'s' if len(zero) > 1 else ''} {steps} weight 0: not drawn "
                    f"(zero has no place on a log axis).")
    return Plot(save(fig, path), caption)


# ------------------------------------------------------------------ from the tables and runs


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
