"""Plots: non-empty PNGs, the step weights of Fig. 4, axes that fit the results."""

from __future__ import annotations

import pytest
from fakes import _assert_png_has_content

from clipood.reporting.figures import step_weights_curves


def test_step_weights_of_fig4():
    T, beta, decay = 50, 0.5, 0.9
    curves = step_weights_curves(T, beta, decay)
    bma, ema, uni = curves.values()
    for w in (bma, ema, uni):
        assert len(w) == T + 1 and sum(w) == pytest.approx(1.0)
    assert bma[0] == pytest.approx(bma[-1]) and bma[0] > bma[T // 2]  # symmetric, U-shaped for beta < 1
    assert ema[0] == pytest.approx(decay ** T) and uni[0] == 0.0


def test_plots_are_non_empty_images(full_report):
    names = {p.name for p in full_report.plots}
    assert {"bars_table1_pacs.png", "curves_pacs.png", "step_weights.png", "vs_lambda.png", "vs_beta.png",
            "wise_ft.png"} <= names
    for p in full_report.plots:
        _assert_png_has_content(p)


def test_accuracy_axis_fits_the_results():
    """Bars of a few percent get an axis they are readable on; high accuracies keep 0-100."""
    from clipood.reporting.figures import axis_top
    assert [axis_top(h) for h in (0.0, 0.9, 4.2, 8.4, 9.5, 45.0, 60.0, 97.0, 100.0)] == \
        [0.2, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 100.0, 100.0]


def test_bar_plot_axis_covers_error_bars_and_paper_marks(tmp_path, monkeypatch):
    from clipood.reporting import figures
    from clipood.reporting.layouts import Row, Table
    from clipood.reporting.stats import Stat
    saved = {}

    def keep(fig, path):
        saved["fig"] = fig
        return path
    monkeypatch.setattr(figures, "save", keep)
    table = Table("t", "table3", "demo", ["method"], ["base", "new"], rows=[
        Row(["fine-tune"], [Stat(5.2, 0.7, 3), Stat(2.3, 0.3, 3)], method="finetune"),
        Row(["CLIPood"], [Stat(4.7, 0.3, 3), Stat(3.8, 0.4, 3)], method="clipood")])
    figures.bars(table, tmp_path / "b.png")
    assert saved["fig"].axes[0].get_ylim() == (0.0, 10.0)  # 5.2 + 0.7 = 5.9 -> 10, not 100
    table.rows.append(Row(["CLIPood"], [Stat(12.0, None, None), None], source="paper", method="clipood"))
    figures.bars(table, tmp_path / "b.png")
    assert saved["fig"].axes[0].get_ylim() == (0.0, 20.0)  # the paper's 12.0 mark stays on the axis


class _Keep:
    """Keeps the figures a plot function would save (to look at what was drawn)."""

    def __init__(self, monkeypatch, *modules):
        self.figs = []
        for m in modules:
            monkeypatch.setattr(m, "save", self)

    def __call__(self, fig, path):
        self.figs.append(fig)
        return path


def _joined_lines(ax):
    """Lines drawn with a visible line style through at least two points."""
    return [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "", " ")
            and len(ln.get_xdata()) >= 2]


def test_two_evaluations_are_points_of_the_number_the_table_shows(tmp_path, monkeypatch):
    """Table 4 runs evaluated at step 0 (zero-shot) and the end: two markers per method, not joined, of the
    Total accuracy Table 4 shows (not H, which no table shows for them)."""
    import random
    import statistics

    from fakes import _b2n_domain_runs

    from clipood.reporting import figures
    from clipood.reporting.records import collect
    truth = _b2n_domain_runs(tmp_path / "runs", random.Random(1))
    keep = _Keep(monkeypatch, figures)
    plot = figures.training_curves(collect(tmp_path / "runs"), "OfficeHome", "table4", tmp_path / "c.png")
    ax = keep.figs[0].axes[1]
    assert _joined_lines(ax) == []
    (line,) = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert list(line.get_xdata()) == [0, 4]
    assert list(line.get_ydata()) == pytest.approx([30.0, 100 * statistics.fmean(t for _, _, t in truth.values())])
    assert ax.get_ylabel() == "Total accuracy on the held-out domain (%)"
    assert "Points only, not joined" in plot.caption and "steps 0, 4" in plot.caption
    assert "two points are no measured trend" in plot.caption and " H " not in plot.caption


def test_three_evaluations_are_a_curve(full_report, monkeypatch, tmp_path):
    from clipood.reporting import figures
    keep = _Keep(monkeypatch, figures)
    selected = [r for r in full_report.records if r.dataset == "PACS"]
    plot = figures.training_curves(selected, "PACS", "table1", tmp_path / "c.png")
    lines = _joined_lines(keep.figs[0].axes[1])
    assert lines and all(list(ln.get_xdata()) == [0, 2, 4] for ln in lines)
    assert "Joined markers" in plot.caption and "Points only" not in plot.caption


def test_bar_captions_say_what_is_drawn(full_report, monkeypatch, tmp_path):
    from matplotlib.collections import PathCollection

    from clipood.reporting import figures
    from clipood.reporting.layouts import Row, Table
    from clipood.reporting.stats import Stat
    keep = _Keep(monkeypatch, figures)
    table = Table("t", "table1", "demo", ["method"], ["a", "b"], rows=[
        Row(["CLIPood"], [Stat(50.0, 2.0, 3), Stat(60.0, 1.0, 3)], method="clipood")])
    caption = figures.bars(table, tmp_path / "b.png").caption
    assert "black marks" not in caption and "no paper number is drawn" in caption and "± std" in caption
    table.rows.append(Row(["paper: CLIPood"], [None, Stat(70.0, None, None)], source="paper", method="clipood"))
    table.rows.append(Row(["paper: MIRO"], [Stat(71.0, None, None), None], source="paper", method=None))
    caption = figures.bars(table, tmp_path / "b.png").caption
    marks = [c for c in keep.figs[-1].axes[0].collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in marks) == 1  # MIRO has no bar of ours: no mark
    assert "black marks: the paper's number for the same method (1)" in caption
    # the full report's two-domain runs are leave-one-out's pairs: no Table 2 (and no bars) is made of them
    assert not [c for c in full_report.markdown.splitlines() if c.startswith("Table 2 layout: PACS")]


def test_zero_weights_are_not_drawn_on_the_log_axis(tmp_path, monkeypatch):
    import math

    from clipood.reporting import figures
    keep = _Keep(monkeypatch, figures)
    plot = figures.step_weights(10, 0.5, 0.9, tmp_path / "w.png")
    ax = keep.figs[0].axes[0]
    assert ax.get_yscale() == "log"
    uniform = next(ln for ln in ax.get_lines() if ln.get_label().startswith("uniform"))
    assert math.isnan(uniform.get_ydata()[0]) and all(y == pytest.approx(0.1) for y in uniform.get_ydata()[1:])
    low, _ = ax.get_ylim()
    for ln in ax.get_lines():
        assert all(y > 0 and y >= low for y in ln.get_ydata() if not math.isnan(y)), ln.get_label()
    assert "uniform gives step 0 weight 0: not drawn" in plot.caption
