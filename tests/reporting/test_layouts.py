"""Table layouts against hand-computed means and stds, model selection, reference numbers, CSV."""

from __future__ import annotations

import csv
import json
import random
import statistics

import pytest
import yaml
from fakes import OFFICE, PACS, _cell, _domainbed_runs, _entry, _md_rows, _write_run

from clipood.reporting import build_report
from clipood.reporting.records import read_run
from clipood.reporting.reference import load_reference


def _chosen(truth, held_out, seeds, key):
    """The lambda each (held-out domain, seed) selects by ``key`` ('val' or 'oracle'), computed from the truth."""
    return {(h, s): max((0.1, 0.3), key=lambda lam: truth[("clipood", h, s, lam)][key]) for h in held_out
            for s in seeds}


def _variant_text(lams):
    """Independent of the report's code: one lambda, or each with its number of seeds, most first."""
    counts = {lam: lams.count(lam) for lam in set(lams)}
    if len(counts) == 1:
        return f"lambda={lams[0]:g}"
    return "; ".join(f"lambda={lam:g} ({n} run{'s' if n > 1 else ''})"
                     for lam, n in sorted(counts.items(), key=lambda x: (-x[1], f"lambda={x[0]:g}")))


def test_table1_cells_are_selected_means_and_stds_with_the_selected_variant(tmp_path):
    truth = _domainbed_runs(tmp_path / "runs", random.Random(0))
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    header, rows = _md_rows(report.markdown, "Table 1 layout: PACS")
    assert header == ["method", "art_painting", "sketch", "Avg"]  # no Δ: the paper's PACS covers 4 domains
    held = ("art_painting", "sketch")
    for mode in ("training-domain", "oracle"):
        pick = _chosen(truth, held, (0, 1, 2), "val" if mode == "training-domain" else "oracle")
        chosen = {hs: truth[("clipood", *hs[:1], hs[1], lam)]["test"] for hs, lam in pick.items()}
        t = next(t for t in report.tables[mode] if t.key.startswith("table1_pacs"))
        row = next(r for r in t.ours if r.method == "clipood")
        expected = [_cell([chosen[(h, s)] for s in (0, 1, 2)]) for h in held]
        avg_vals = [(chosen[("art_painting", s)] + chosen[("sketch", s)]) / 2 for s in (0, 1, 2)]
        expected.append(_cell(avg_vals))
        assert [c.fmt() for c in row.cells] == expected, mode
        labels = [_variant_text([pick[(h, s)] for s in (0, 1, 2)]) for h in held]
        assert row.variants == labels + [None], mode
        assert not t.paper and row.gap is None, mode
        if mode == "training-domain":
            assert rows["CLIPood (MMS + BMA)"] == [f"{c} [{v}]" for c, v in zip(expected[:2], labels)] + expected[2:]
    note = next(n for n in t.notes if n.startswith("The paper reports PACS only"))
    assert "4 domains" in note and "missing: cartoon, photo" in note
    erm = [_cell([truth[("erm-linear", h, s, None)]["test"] for s in (0, 1, 2)]) for h in held]
    assert rows["ERM (linear head)"][:2] == erm  # one variant: nothing chosen, no label
    # No zero-shot run: the training runs' pre-training evaluation stands in (same number every seed).
    assert rows["zero-shot"][:3] == ["25.0 ± 0.0"] * 3
    assert "Source: Yang Shu" in report.markdown

    with open(tmp_path / "out" / "tables" / "table1_pacs.csv", newline="") as f:
        table = list(csv.DictReader(f))
    ours = next(r for r in table if r["source"] == "ours" and r["method"] == "CLIPood (MMS + BMA)")
    t = next(t for t in report.tables["training-domain"] if t.key == "table1_pacs")
    row = next(r for r in t.ours if r.method == "clipood")
    assert float(ours["sketch"]) == pytest.approx(row.cells[1].mean, abs=1e-3)
    assert float(ours["sketch std"]) == pytest.approx(row.cells[1].std, abs=1e-3) and ours["sketch n"] == "3"
    assert float(ours["sketch sem"]) == pytest.approx(row.cells[1].std / 3 ** 0.5, abs=1e-3)
    assert ours["sketch selected"] == row.variants[1]
    with open(tmp_path / "out" / "runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == sum(len(r.evals) for r in report.records)


def test_table1_compares_with_the_paper_only_over_the_same_domains(tmp_path):
    """All four PACS domains held out: the paper's PACS average and Δ against ours; with one domain no Avg."""
    truth = _domainbed_runs(tmp_path / "runs", random.Random(3), held_out=tuple(PACS), seeds=(0, 1))
    report = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    header, rows = _md_rows(report.markdown, "Table 1 layout: PACS")
    assert header == ["method", *PACS, "Avg", "Δ vs paper (Avg)"]
    pick = _chosen(truth, PACS, (0, 1), "val")
    avg = [statistics.fmean(truth[("clipood", h, s, pick[(h, s)])]["test"] for h in PACS) for s in (0, 1)]
    t = next(t for t in report.tables["training-domain"] if t.key == "table1_pacs")
    row = next(r for r in t.ours if r.method == "clipood")
    assert row.cells[-1].fmt() == _cell(avg)
    assert row.gap == pytest.approx(100 * statistics.fmean(avg) - 97.3)
    assert rows["paper: CLIPood"][-2:] == ["97.3 ± 0.1", ""] and rows["paper: ERM (CLIP)"][-2] == "96.1 ± 0.5"
    assert rows["paper: CLIPood"][:4] == ["-"] * 4  # the paper has no per-domain PACS numbers

    one = tmp_path / "one"
    _domainbed_runs(one / "runs", random.Random(4), held_out=("sketch",), seeds=(0, 1))
    t = next(t for t in build_report(one / "runs", one / "out", make_plots=False).tables["training-domain"]
             if t.key == "table1_pacs")
    assert t.columns == ["sketch"] and not t.paper  # no Avg repeating the one domain, no paper average beside it


def test_domainbed_cells_are_compared_with_the_paper_only_under_the_official_protocol(tmp_path):
    """The paper tests on the official code's splits (Table 1: the held-out domain's 'out' 20 %; Table 4: the whole
    domain, base and new each among all classes): runs with clipood's protocol get no paper row and no Δ."""
    from fakes import _b2n_domain_runs
    _domainbed_runs(tmp_path / "runs", random.Random(3), held_out=tuple(PACS), seeds=(0, 1), protocol="clipood")
    _b2n_domain_runs(tmp_path / "runs", random.Random(5), held_out=tuple(OFFICE), protocol="clipood")
    tables = {t.key: t for t in build_report(tmp_path / "runs", tmp_path / "out",
                                             make_plots=False).tables["training-domain"]}
    for key in ("table1_pacs", "table4_domain_and_class_shift"):
        t = tables[key]
        assert not t.paper and all(r.gap is None for r in t.ours), key
        assert any("--profile official" in n for n in t.notes), key
    official = tmp_path / "official"
    _domainbed_runs(official / "runs", random.Random(3), held_out=tuple(PACS), seeds=(0, 1))
    _b2n_domain_runs(official / "runs", random.Random(5), held_out=tuple(OFFICE))
    tables = {t.key: t for t in build_report(official / "runs", official / "out",
                                             make_plots=False).tables["training-domain"]}
    for key in ("table1_pacs", "table4_domain_and_class_shift"):
        assert tables[key].paper and tables[key].gap_column, key
    assert any("each scored among all classes" in n for n in tables["table4_domain_and_class_shift"].notes)


def test_tables_2_3_4_layouts_match_paper_columns(tmp_path):
    root, rng = tmp_path / "runs", random.Random(1)
    imnet = ["imagenet", "imagenet-v2", "imagenet-sketch"]
    expect = {}
    for seed in (0, 1):
        accs = [rng.uniform(0.4, 0.8) for _ in imnet]
        _write_run(root, f"in-clipood-{seed}", method="clipood", dataset="ImageNet", holdout=(), seed=seed, variant={},
                   evals={f"{d}/test": _entry(d, "test", "test", a) for d, a in zip(imnet, accs)}, domains=imnet,
                   train_domains=["imagenet"])
        expect.setdefault("in", []).append(accs)
        b, n = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7)
        _write_run(root, f"in-b2n-clipood-{seed}", method="clipood", dataset="ImageNet", holdout=(), seed=seed,
                   variant={}, b2n=True, evals={"imagenet/test": _entry("imagenet", "test", "test", 0.6, (b, n))},
                   domains=["imagenet"], train_domains=["imagenet"])
        expect.setdefault("b2n", []).append((b, n))
        for held in ("Art", "Real_World"):
            b, n, tot = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.8)
            _write_run(root, f"oh-clipood-{held}-{seed}", method="clipood", dataset="OfficeHome", holdout=(held,),
                       seed=seed, variant={}, b2n=True, evals={f"{held}/in": _entry(held, "in", "test", tot, (b, n))},
                       domains=OFFICE, train_domains=[d for d in OFFICE if d != held])
            expect[(held, seed)] = (b, n, tot)
    report = build_report(root, tmp_path / "out", make_plots=False)
    tables = {t.kind: t for t in report.tables["training-domain"]}

    t2 = tables["table2"]
    assert t2.columns == ["imagenet", "imagenet-v2", "imagenet-sketch", "OOD avg"]
    ours = t2.ours[0]
    accs = expect["in"]
    assert [c.fmt() for c in ours.cells] == [_cell([a[i] for a in accs]) for i in range(3)] + \
        [_cell([(a[1] + a[2]) / 2 for a in accs])]
    paper = {r.labels[0]: r for r in t2.paper}
    assert [c.fmt() for c in paper["paper: CLIPood"].cells[:3]] == ["71.6 ± 0.1", "64.9 ± 0.1", "49.3 ± 0.1"]
    assert paper["paper: CLIPood"].cells[3].mean == pytest.approx((64.9 + 49.3) / 2)  # over the shifts shown
    assert ours.gap == pytest.approx(ours.cells[3].mean - (64.9 + 49.3) / 2)

    t3 = tables["table3"]
    assert t3.columns == ["ImageNet Base", "ImageNet New", "ImageNet H"]
    hs = [2 * b * n / (b + n) for b, n in expect["b2n"]]
    assert [c.fmt() for c in t3.ours[0].cells] == [_cell([b for b, _ in expect["b2n"]]),
                                                   _cell([n for _, n in expect["b2n"]]), _cell(hs)]
    assert [c.fmt() for c in next(r for r in t3.paper if r.method == "clipood").cells] == \
        ["77.5 ± 0.1", "70.3 ± 0.1", "73.7 ± 0.1"]
    assert t3.gap_column == "ImageNet H"

    t4 = tables["table4"]
    assert t4.columns == ["Art", "Real_World", "Avg"]
    rows = {tuple(r.labels): r for r in t4.rows}
    for split, i, paper_vals in (("Base", 0, (90.1, 94.8)), ("New", 1, (77.8, 86.7)), ("Total", 2, (85.1, 91.0))):
        mine = rows[(split, "CLIPood (MMS + BMA)")]
        assert [c.fmt() for c in mine.cells[:2]] == [_cell([expect[(h, s)][i] for s in (0, 1)])
                                                     for h in ("Art", "Real_World")]
        ref = rows[(split, "paper: CLIPood")]
        assert [c.mean for c in ref.cells[:2]] == list(paper_vals)
        assert ref.cells[2].mean == pytest.approx(statistics.fmean(paper_vals))
        assert mine.gap == pytest.approx(mine.cells[2].mean - statistics.fmean(paper_vals))
    assert [r.labels[0] for r in t4.rows] == sorted((r.labels[0] for r in t4.rows),
                                                   key=["Base", "New", "Total"].index)


def test_reference_numbers_are_consistent_with_their_own_averages():
    """The transcription agrees with itself: averages and H recomputed from the per-column numbers.

    Published values are rounded to 0.1, so a recomputed average may differ by up to 0.05 (its own
    rounding) + 0.05 (the columns' rounding); a mistyped digit moves it further."""
    ref = load_reference()
    v = lambda x: x[0] if isinstance(x, list) else x  # noqa: E731
    for row in ref["table1"]["rows"]:
        cols = [v(row["values"][c]) for c in ref["table1"]["columns"]]
        assert statistics.fmean(cols) == pytest.approx(v(row["values"]["Avg"]), abs=0.101), row["method"]
    for row in ref["table2"]["rows"]:
        ood = [v(row["values"][c]) for c in ref["table2"]["ood"]]
        assert statistics.fmean(ood) == pytest.approx(v(row["values"]["OOD avg"]), abs=0.101), row["method"]
    for row in ref["table3"]["rows"]:
        for group in row["values"].values():
            b, n = v(group["Base"]), v(group["New"])
            assert 2 * b * n / (b + n) == pytest.approx(v(group["H"]), abs=0.11), row["method"]
    assert len(ref["table4"]["rows"]) == 9 and "ICML 2023" in ref["source"]["venue"]


def test_run_without_sweep_metadata_is_read_from_its_files(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "results.json").write_text(json.dumps({
        "kind": "train", "dataset": "/data/shapes", "holdout_domains": ["sketch"], "seed": 3, "base_to_new": False,
        "method": {"loss": "fixed_margin", "averaging": "bma"}, "steps": 7,
        "backbone": {"arch": "ViT-B-16", "weights": "open_clip 'openai' weights of ViT-B-16"},
        "final": {"sketch/in": _entry("sketch", "in", "test", 0.5)}}))
    (d / "config.yaml").write_text(yaml.safe_dump({"loss": {"name": "fixed_margin", "margin_lambda": 0.2},
                                                   "averaging": {"name": "bma", "beta": 0.5}}))
    (rec,) = read_run(d)
    assert (rec.method, rec.dataset, rec.holdout, rec.seed) == ("clipood-fixed-margin", "shapes", ("sketch",), 3)
    assert rec.variant["loss.margin_lambda"] == 0.2 and "averaging.ema_decay" not in rec.variant
    # What the settings table shows: what results.json says was loaded, where config.yaml does not say.
    assert (rec.hparams["arch"], rec.hparams["pretrained"], rec.hparams["steps"]) == \
        ("ViT-B-16", "open_clip 'openai' weights of ViT-B-16", 7)




def test_no_average_beside_another_average_or_of_one_column(tmp_path):
    """Table 3: ours averages the user's datasets, the paper's Avg CoOp's 11: never side by side. Table 2: one
    shifted test set has no 'OOD avg' column repeating it (and Δ is on that column)."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        for ds in ("ImageNet", "Flowers"):
            _write_run(root, f"{ds}-b2n-{seed}", method="clipood", dataset=ds, holdout=(), seed=seed, variant={},
                       b2n=True, evals={"x/test": _entry("x", "test", "test", 0.6, (0.7, 0.5 + 0.1 * seed))},
                       domains=["x"], train_domains=["x"])
        _write_run(root, f"in-{seed}", method="clipood", dataset="ImageNet", holdout=(), seed=seed, variant={},
                   evals={"imagenet/test": _entry("imagenet", "test", "test", 0.7),
                          "imagenet-v2/test": _entry("imagenet-v2", "test", "test", 0.6 + 0.01 * seed)},
                   domains=["imagenet", "imagenet-v2"], train_domains=["imagenet"])
    tables = {t.kind: t for t in build_report(root, tmp_path / "out", make_plots=False).tables["training-domain"]}
    t3 = tables["table3"]
    assert t3.columns[-3:] == ["Avg Base", "Avg New", "Avg H"]
    paper = next(r for r in t3.paper if r.method == "clipood")
    assert paper.cells[-3:] == [None] * 3 and paper.cells[:3] == [None] * 3  # Flowers first: not in the paper
    assert [c.mean for c in paper.cells[3:6]] == [77.5, 70.3, 73.7]  # ImageNet's own numbers stay
    assert any("not shown beside it" in n for n in t3.notes)
    t2 = tables["table2"]
    assert t2.columns == ["imagenet", "imagenet-v2"] and t2.gap_column == "imagenet-v2"
    ours = t2.ours[0]
    assert ours.gap == pytest.approx(ours.cells[1].mean - 64.9)


def test_the_rival_methods_rows_sit_beside_the_papers_own(tmp_path):
    """CoOp and CoCoOp runs are matched with the paper's CoOp and CoCoOp rows (gap to them); a method the paper
    has no row for (FLYP) is shown without one."""
    root, rng = tmp_path / "runs", random.Random(7)
    got = {}
    for method in ("coop", "cocoop", "flyp"):
        b, n = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7)
        _write_run(root, f"b2n-{method}", method=method, dataset="ImageNet", holdout=(), seed=0, variant={},
                   b2n=True, evals={"imagenet/test": _entry("imagenet", "test", "test", 0.6, (b, n))},
                   domains=["imagenet"], train_domains=["imagenet"])
        got[method] = 100 * 2 * b * n / (b + n)
    t3 = next(t for t in build_report(root, tmp_path / "out", make_plots=False).tables["training-domain"]
              if t.kind == "table3")
    ours = {r.method: r for r in t3.ours}
    assert ours["coop"].gap == pytest.approx(got["coop"] - 71.9, abs=1e-6)  # paper: CoOp, ImageNet H
    assert ours["cocoop"].gap == pytest.approx(got["cocoop"] - 73.1, abs=1e-6)
    assert ours["flyp"].gap is None and ours["flyp"].labels[-1] == "FLYP"
    assert {r.labels[0] for r in t3.paper} >= {"paper: CoOp", "paper: CoCoOp"}
