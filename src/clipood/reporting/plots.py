"""Report figures (PNG, matplotlib's Agg renderer; no display needed).

* per-domain bars: each method's accuracy per held-out domain, std over seeds as error
  bars, the paper's numbers as black marks where they exist;
* training curves: train loss and held-out accuracy against the step (metrics.jsonl;
  accuracy points are the evaluations every ``--eval-every`` steps, the zero-shot model
  at step 0 and the final model), mean over runs with a ±std band;
* step weights (the paper's Fig. 4): the share of each step's weights theta_t in the
  final averaged model under BMA (Eq. 6), EMA and the uniform average;
* accuracy against lambda (Eq. 4) and against beta (Eq. 6) when runs vary them;
* WiSE-FT: accuracy against the interpolation coefficient alpha.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure  # drawn without pyplot: the Agg renderer, no display, no global state

from ..averaging import beta_weights
from ..methods import METHODS
from .records import RunRecord, headline
from .stats import mean, stat
from .table import Table, label

__all__ = ["HPARAMS", "PALETTE", "axis_top", "bars", "color", "hparam_plot", "hparam_series", "step_weights",
           "step_weights_curves", "training_curves", "wise_ft_plot"]

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd"]


def color(method: str) -> str:
    names = list(METHODS)
    i = names.index(method) if method in names else len(names) + sum(map(ord, method))
    return PALETTE[i % len(PALETTE)]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    return path


def axis_top(highest: float) -> float:
    """Top of an accuracy axis (%): a round number 10 % above the highest bar or mark, at most
    100, so that accuracies of a few percent stay readable rather than flat on a 0-100 axis."""
    target = min(100.0, max(highest, 0.1) * 1.1)
    magnitude = 10.0 ** math.floor(math.log10(target))
    return min(100.0, next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= target))


def bars(table: Table, path: Path, *, split: Optional[str] = None) -> Optional[Path]:
    """Grouped bars: one group per column of ``table``, one bar per method (Table 4: rows of one split)."""
    ours = [r for r in table.ours if split is None or r.labels[0] == split]
    paper = [r for r in table.paper if split is None or r.labels[0] == split]
    if not ours or not table.columns:
        return None
    n_cols, n_rows = len(table.columns), len(ours)
    width = 0.8 / n_rows
    fig = Figure(figsize=(max(6.0, 0.35 * n_cols * n_rows + 2.5), 4.2))
    ax = fig.add_subplot()
    highest = 0.0
    for i, r in enumerate(ours):
        xs = [c + (i - (n_rows - 1) / 2) * width for c in range(n_cols)]
        means = [c.mean if c else 0.0 for c in r.cells]
        errs = [c.std if c and c.std is not None else 0.0 for c in r.cells]
        ax.bar(xs, means, width * 0.95, yerr=errs, capsize=2, label=r.labels[-1], color=color(r.method or ""))
        highest = max([highest] + [m + e for m, e in zip(means, errs)])
        for p in paper:
            if p.method == r.method:
                pts = [(x, c.mean) for x, c in zip(xs, p.cells) if c is not None]
                if pts:
                    ax.scatter(*zip(*pts), marker="_", s=250, color="black", linewidths=2, zorder=3)
                    highest = max([highest] + [y for _, y in pts])
    if any(p.method for p in paper):
        ax.scatter([], [], marker="_", s=250, color="black", linewidths=2, label="paper (same method)")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(table.columns, rotation=20 if n_cols > 5 else 0, ha="right" if n_cols > 5 else "center")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, axis_top(highest))
    ax.set_title(table.title + (f" ({split})" if split else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _band(ax, series: dict[int, list[float]], **kw) -> None:
    steps = sorted(series)
    m = [mean(series[s]) for s in steps]
    st = [stat(series[s], scale=1.0) for s in steps]
    sd = [x.std if x and x.std is not None else 0.0 for x in st]
    ax.plot(steps, m, marker="o" if len(steps) < 30 else None, markersize=3, **kw)
    ax.fill_between(steps, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], alpha=0.2,
                    color=kw.get("color"))


def training_curves(records: list[RunRecord], dataset: str, path: Path) -> Optional[Path]:
    """Train loss and held-out accuracy against the step, one line per method (mean ± std over runs)."""
    recs = [r for r in records if r.dataset == dataset and r.kind == "train"]
    loss: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    acc: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if r.zeroshot:
            acc[r.method][0].append(100 * headline(r.zeroshot, r.base_to_new))
        for ev in _read_metrics(r.metrics_path):
            if "loss" in ev and "step" in ev:
                loss[r.method][int(ev["step"])].append(float(ev["loss"]))
            if isinstance(ev.get("eval"), dict) and "step" in ev:
                acc[r.method][int(ev["step"])].append(100 * headline(ev["eval"], r.base_to_new))
    if not loss:
        return None
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for m in sorted(loss, key=lambda m: list(METHODS).index(m) if m in METHODS else 99):
        _band(ax1, loss[m], label=label(m), color=color(m))
        if acc.get(m):
            _band(ax2, acc[m], label=label(m), color=color(m))
    ax1.set_xlabel("step")
    ax1.set_ylabel("train loss")
    ax1.set_title(f"{dataset}: training loss", fontsize=10)
    b2n = any(r.base_to_new for r in recs)
    ax2.set_xlabel("step (0: zero-shot model)")
    ax2.set_ylabel("held-out H (%)" if b2n else "held-out accuracy (%)")
    ax2.set_title(f"{dataset}: held-out accuracy of the (averaged) model", fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def step_weights_curves(total_steps: int, beta: float, ema_decay: float) -> dict[str, list[float]]:
    """Share of theta_t (t = 0..T) in the final average: BMA (Eq. 6, normalised), EMA, uniform."""
    T = total_steps
    a = beta_weights(T, beta)
    s = sum(a)
    bma = [x / s for x in a]
    ema = [ema_decay ** T] + [(1 - ema_decay) * ema_decay ** (T - t) for t in range(1, T + 1)]
    uniform = [0.0] + [1.0 / T] * T
    return {f"BMA (beta = {beta:g})": bma, f"EMA (decay = {ema_decay:g})": ema, "uniform (theta_1..theta_T)": uniform}


def step_weights(total_steps: int, beta: float, ema_decay: float, path: Path) -> Path:
    """Fig. 4 of the paper: how much each step's model counts in the final average."""
    curves = step_weights_curves(total_steps, beta, ema_decay)
    fig = Figure(figsize=(7.5, 4))
    ax = fig.add_subplot()
    for (name, w), c in zip(curves.items(), ("#c44e52", "#4c72b0", "#8c8c8c")):
        ax.plot(range(total_steps + 1), [max(x, 1e-12) for x in w], label=name, color=c)
    ax.set_yscale("log")
    ax.set_ylim(max(1e-9, min(min(x for x in w if x > 0) for w in curves.values()) / 2), 1.0)
    ax.set_xlabel("step t (0: the pre-trained weights)")
    ax.set_ylabel("weight of theta_t in the final model")
    ax.set_title(f"Step weights of the averages over T = {total_steps} steps (paper Fig. 4)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


HPARAMS = {"lambda": ("lambda (MMS margin scale, Eq. 4)", 0.3, lambda r: r.hparams.get("loss") in ("mms",
                                                                                                  "fixed_margin")),
           "beta": ("beta (Beta(beta, beta) step weights, Eq. 6)", 0.5, lambda r: r.hparams.get("averaging") == "bma")}


def hparam_series(records: list[RunRecord], name: str) -> dict[tuple[str, str], dict[float, list[float]]]:
    """(dataset, method) -> value -> per-seed headline accuracy (mean over held-out domains), for varied values."""
    _, _, relevant = HPARAMS[name]
    grouped: dict[tuple[str, str], dict[float, dict[int, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        v = r.hparams.get(name)
        if r.kind != "train" or v is None or not relevant(r):
            continue
        grouped[(r.dataset, r.method)][float(v)][r.seed].append(r.headline())
    out = {}
    for k, by_value in grouped.items():
        if len(by_value) >= 2:
            out[k] = {v: [mean(xs) for xs in seeds.values()] for v, seeds in sorted(by_value.items())}
    return out


def hparam_plot(records: list[RunRecord], name: str, path: Path) -> Optional[Path]:
    series = hparam_series(records, name)
    if not series:
        return None
    title, default, _ = HPARAMS[name]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for (ds, m), by_value in series.items():
        xs = list(by_value)
        cells = [stat(v) for v in by_value.values()]
        ax.errorbar(xs, [c.mean for c in cells], yerr=[c.std or 0.0 for c in cells], marker="o", capsize=3,
                    label=f"{ds}: {label(m)}", color=color(m))
    ax.axvline(default, color="black", linestyle=":", linewidth=1, label=f"paper default {default:g}")
    ax.set_xlabel(title)
    ax.set_ylabel("held-out accuracy (%) (H with base/new)")
    ax.set_title(f"Accuracy against {name} (mean ± std over seeds; other options marginalised)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def wise_ft_plot(records: list[RunRecord], path: Path) -> Optional[Path]:
    """WiSE-FT: held-out and validation accuracy against alpha (0: zero-shot, 1: fine-tuned)."""
    from .selection import score
    recs = [r for r in records if r.method == "wise-ft" and "alpha" in r.variant]
    if not recs:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for i, ds in enumerate(sorted({r.dataset for r in recs})):
        for what, fn, style in (("held-out", RunRecord.headline, "-"),
                                ("training-domain val", lambda r: score(r, "training-domain"), "--")):
            by_alpha: dict[float, list] = defaultdict(list)
            for r in recs:
                if r.dataset == ds:
                    by_alpha[float(r.variant["alpha"])].append(fn(r))
            xs = sorted(by_alpha)
            cells = [stat(by_alpha[x]) for x in xs]
            pts = [(x, c) for x, c in zip(xs, cells) if c is not None]
            if pts:
                ax.errorbar([x for x, _ in pts], [c.mean for _, c in pts], yerr=[c.std or 0.0 for _, c in pts],
                            linestyle=style, marker="o", capsize=3, color=PALETTE[i % len(PALETTE)],
                            label=f"{ds}: {what}")
    ax.set_xlabel("alpha (0: zero-shot weights, 1: fine-tuned weights)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("WiSE-FT weight interpolation (mean ± std over runs)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
