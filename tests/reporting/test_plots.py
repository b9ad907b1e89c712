"""Plots: non-empty PNGs, the step weights of Fig. 4, axes that fit the results."""

from __future__ import annotations

import pytest
from fakes import _assert_png_has_content

from clipood.reporting.curves import step_weights_curves


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
    from clipood.reporting.plots import axis_top
    assert [axis_top(h) for h in (0.0, 0.9, 4.2, 8.4, 9.5, 45.0, 60.0, 97.0, 100.0)] == \
        [0.2, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 100.0, 100.0]


def test_bar_plot_axis_covers_error_bars_and_paper_marks(tmp_path, monkeypatch):
    from clipood.reporting import plots
    from clipood.reporting.layouts import Row, Table
    from clipood.reporting.stats import Stat
    saved = {}

    def keep(fig, path):
        saved["fig"] = fig
        return path
    monkeypatch.setattr(plots, "save", keep)
    table = Table("t", "table3", "demo", ["method"], ["base", "new"], rows=[
        Row(["fine-tune"], [Stat(5.2, 0.7, 3), Stat(2.3, 0.3, 3)], method="finetune"),
        Row(["CLIPood"], [Stat(4.7, 0.3, 3), Stat(3.8, 0.4, 3)], method="clipood")])
    plots.bars(table, tmp_path / "b.png")
    assert saved["fig"].axes[0].get_ylim() == (0.0, 10.0)  # 5.2 + 0.7 = 5.9 -> 10, not 100
    table.rows.append(Row(["CLIPood"], [Stat(12.0, None, None), None], source="paper", method="clipood"))
    plots.bars(table, tmp_path / "b.png")
    assert saved["fig"].axes[0].get_ylim() == (0.0, 20.0)  # the paper's 12.0 mark stays on the axis
