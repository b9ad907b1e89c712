"""Model selection: leave-one-domain-out against a direct computation from the fakes' truth, and what the
report says (never a silent fallback) when the runs it needs are missing."""

from __future__ import annotations

import random
import shutil
import statistics

from fakes import OFFICE, PACS, _b2n_domain_runs, _cell, _domainbed_runs, _entry, _write_run

from clipood.reporting import build_report
from clipood.reporting.records import collect
from clipood.reporting.selection import select


def _loo_pick(truth, held, seed):
    """DomainBed's rule, written out: the lambda whose (held, v) runs score best on v, averaged over v."""
    score = {lam: statistics.fmean(truth[("clipood", held, seed, lam, v)] for v in PACS if v != held)
             for lam in (0.1, 0.3)}
    return max(score, key=lambda lam: (score[lam], -lam))  # ties: the first variant, as select() keeps


def test_leave_one_out_picks_by_the_paired_runs(tmp_path):
    truth = _domainbed_runs(tmp_path / "runs", random.Random(7), held_out=tuple(PACS), pairs=True, seeds=(0, 1))
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    t = next(t for t in report.tables["leave-one-out"] if t.key == "table1_pacs_loo")
    assert t.title.endswith("(leave-one-domain-out selection)")
    row = next(r for r in t.ours if r.method == "clipood")
    picks = {(h, s): _loo_pick(truth, h, s) for h in PACS for s in (0, 1)}
    expected = [_cell([truth[("clipood", h, s, picks[(h, s)])]["test"] for s in (0, 1)]) for h in PACS]
    assert [c.fmt() for c in row.cells[:4]] == expected
    for h, label in zip(PACS, row.variants):
        lams = [picks[(h, s)] for s in (0, 1)]
        assert label == (f"lambda={lams[0]:g}" if lams[0] == lams[1] else
                         "; ".join(f"lambda={lam:g} (1 run)" for lam in sorted(lams)))
    # It is its own selection: somewhere it picks otherwise than training-domain validation.
    val_picks = {(h, s): max((0.1, 0.3), key=lambda lam: truth[("clipood", h, s, lam)]["val"]) for h in PACS
                 for s in (0, 1)}
    assert picks != val_picks
    info = report.selections["leave-one-out"]
    assert info.unselectable == 0 and info.unscored_variants == 0 and not info.missing
    # The paired runs themselves hold out two domains: no single test domain, so no leave-one-out cell.
    assert info.not_applicable > 0 and "hold out no single domain" in info.statement()
    # ... and no shift of their own: no Table 2 of PACS made of them, and the page says where they went
    assert not [t for ts in report.tables.values() for t in ts if t.kind == "table2"]
    n_pairs = len([p for p in (tmp_path / "runs").iterdir() if p.name.count("+") == 1])
    assert f"{n_pairs} of the runs hold out two domains beside runs that hold out each alone" in report.markdown


def test_missing_paired_runs_leave_cells_empty_and_are_named(tmp_path):
    truth = _domainbed_runs(tmp_path / "runs", random.Random(7), held_out=tuple(PACS), pairs=True, seeds=(0, 1))
    for lam in (0.1, 0.3):  # both variants of one pair, seed 0: (art_painting, seed 0) and (cartoon, seed 0) lose
        shutil.rmtree(tmp_path / "runs" / f"pacs-clipood-art_painting+cartoon-{lam}-seed0")
    shutil.rmtree(tmp_path / "runs" / "pacs-clipood-photo+sketch-0.1-seed1")  # one variant of another pair
    chosen, info = select(collect(tmp_path / "runs"), "leave-one-out")
    got = {(r.holdout, r.seed): r.variant.get("loss.margin_lambda") for r in chosen
           if r.method == "clipood" and len(r.holdout) == 1}
    assert (("art_painting",), 0) not in got and (("cartoon",), 0) not in got  # empty, not another selection
    assert got[(("photo",), 1)] == 0.3 and got[(("sketch",), 1)] == 0.3  # the only variant with all its runs
    assert got[(("photo",), 0)] == _loo_pick(truth, "photo", 0)
    assert info.unselectable == 2 and info.unscored_variants == 2
    text = info.statement()
    assert "2 cell(s) are empty" in text and "2 variant(s) lacked some" in text
    assert "PACS clipood art_painting+cartoon seed 0 lambda=0.1" in text and "holdout: [a, b, c, [a, b]" in text

    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    t = next(t for t in report.tables["leave-one-out"] if t.key == "table1_pacs_loo")
    art = next(r for r in t.ours if r.method == "clipood").cells[0]
    pick = _loo_pick(truth, "art_painting", 1)
    assert art.n == 1 and art.fmt() == f"{100 * truth[('clipood', 'art_painting', 1, pick)]['test']:.1f}"


def test_without_paired_runs_the_report_says_so_and_shows_no_table(tmp_path):
    _domainbed_runs(tmp_path / "runs", random.Random(0))
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    assert report.tables["leave-one-out"] == []
    statement = report.selections["leave-one-out"].statement()
    assert "cell(s) are empty: no variant has every run this selection needs" in statement
    assert f"## Results (leave-one-domain-out selection)\n\n**{statement}**" in report.markdown
    assert "table1_pacs_loo" not in report.markdown
    assert report.tables["training-domain"] and report.tables["oracle"]  # the other selections stand


def test_a_run_no_layout_takes_is_named_not_dropped(tmp_path):
    """Base-to-new holding out two domains (no paired single runs): no table of the paper's has it; the page
    names it and runs.csv has its numbers, instead of it vanishing."""
    _b2n_domain_runs(tmp_path / "runs", random.Random(3), seeds=(0,))
    held = ("Art", "Clipart")
    evals = {f"{d}/in": _entry(d, "in", "test", 0.5, (0.6, 0.4)) for d in held}
    _write_run(tmp_path / "runs", "oh-two-held-out", method="finetune", dataset="OfficeHome", holdout=held, seed=0,
               variant={}, b2n=True, evals=evals, domains=OFFICE, train_domains=[d for d in OFFICE if d not in held])
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    assert "In no table (1: base-to-new with several held-out domains" in report.markdown
    assert "oh-two-held-out" in report.markdown and "oh-two-held-out" in (tmp_path / "out" / "runs.csv").read_text()
