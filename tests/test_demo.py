"""The first-run job, shrunk: emoji slice, tiny backbone, two seeds, a few steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipood.data.emoji import DEFAULT_HOLDOUT
from clipood.demo import METHODS, DemoSettings, run_demo


def _sources_or_skip():
    from clipood.data.emoji.sources import DOMAINS, find_sources
    from clipood.errors import DataError
    try:
        find_sources(None, [d.package for d in DOMAINS])
    except DataError as e:
        pytest.skip(f"emoji sources not installed (npm ci --prefix data-sources): {e}")


def test_demo_runs_every_method_and_seed_then_skips_them(tiny_pretrained, tmp_path, capsys):
    _sources_or_skip()
    settings = DemoSettings(arch=f"local-dir:{tiny_pretrained}", pretrained="auto", classes=6, steps=2, seeds=2,
                            batch_size=2, workers=0, lr=1e-3)
    out = tmp_path / "runs"
    table = run_demo(out, settings, data_dir=tmp_path / "emoji", progress=False)
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(METHODS) + 1
    chance = [c.strip() for c in rows.pop().strip("|").split("|")]
    assert chance == ["chance (uniform guess)", "33.3", "33.3", "33.3", "16.7", "-"]  # 6 classes: 3 base, 3 new
    for line, (method, label) in zip(rows, METHODS.items()):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == label
        if method == "zeroshot":  # one evaluation of the pre-trained model: no randomness, no std
            assert all(re.fullmatch(r"\d+\.\d", c) for c in cells[1:5]) and cells[5] == "1 (no randomness)", line
            continue
        assert all(re.fullmatch(r"\d+\.\d ± \d+\.\d", c) for c in cells[1:5]), line  # mean ± std, 2 seeds
        assert cells[5] == "2"
    assert f"{DEFAULT_HOLDOUT} held out" in table
    assert (out / "report" / "index.html").is_file()

    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert len(finished) >= 2 * (len(METHODS) - 1)
    capsys.readouterr()
    run_demo(out, settings, data_dir=tmp_path / "emoji", progress=False, report=False)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")} == finished  # nothing reran


@pytest.mark.parametrize("regime,aligned", [
    ("paper", {"emojione", "fluent", "fluent-mono", "noto", "twemoji"}),  # every designer but the held-out one
    ("disjoint", {"noto", "twemoji"}),                                    # the anchors only
])
def test_demo_aligns_its_backbone_as_its_regime_says_and_never_on_the_held_out_designer(tmp_path, capsys, regime,
                                                                                          aligned):
    import json

    from clipood.demo import check_protocol
    from clipood.errors import ClipoodError
    from clipood.model.weights import installed_dir
    _sources_or_skip()
    s = DemoSettings(arch="clipood-tiny-towers", pretrained=f"emoji-test-{regime}", align_from="none", classes=6,
                     steps=2, seeds=1, batch_size=2, workers=0, align_steps=5, align_batch=8, align_val_size=8,
                     regime=regime)
    assert s.finetune_domains == ["emojione", "fluent", "fluent-mono"] and s.holdout == DEFAULT_HOLDOUT
    run_demo(tmp_path / "runs", s, data_dir=tmp_path / "emoji", progress=False, report=False)
    record = json.loads((installed_dir("clipood-tiny-towers", s.tag) / "clipood_pretrain.json").read_text())
    assert set(record["data"]["train_pairs_per_domain"]) == aligned == set(s.align_domains)
    assert record["towers"] == {**record["towers"], "image": "locked", "text": "locked"}
    benchmark = json.loads((tmp_path / "emoji" / "manifest.json").read_text())["domains"]
    assert set(benchmark) == {*s.finetune_domains, DEFAULT_HOLDOUT} and DEFAULT_HOLDOUT not in aligned
    out = capsys.readouterr().out
    assert f"aligned on {', '.join(sorted(aligned))}" in out and f"{regime} regime; the " in out

    # the held-out designer in the record: refused in both regimes
    leaky = dict(record, data={**record["data"], "train_pairs_per_domain": {"noto": 3, "openmoji": 3}})
    with pytest.raises(ClipoodError, match="trained on the held-out designer 'openmoji'"):
        check_protocol(s, leaky, "somewhere")
    # a fine-tuning designer in the record: the paper regime's own alignment, refused in the disjoint one
    leaky["data"]["train_pairs_per_domain"] = {"noto": 3, "fluent": 3}
    if regime == "disjoint":
        with pytest.raises(ClipoodError, match="aligned on fluent, which the demo fine-tunes on"):
            check_protocol(s, leaky, "somewhere")
    else:
        check_protocol(s, leaky, "somewhere")


def test_the_paper_regime_tag_is_known_by_its_recipe():
    from clipood.demo import paper_tag
    from clipood.errors import ModelError
    from clipood.model.weights import resolve_weights
    assert DemoSettings().tag == paper_tag("openmoji") == "emoji-without-openmoji"
    assert DemoSettings(regime="disjoint").tag == "emoji"
    with pytest.raises(ModelError, match="clipood demo --holdout-domain noto --align-only"):
        resolve_weights("clipood-lite0-minilm", "emoji-without-noto")


@pytest.mark.parametrize("flags,expected", [
    (["--steps", "0"], "--steps: 0 is out of range; allowed: an integer from 1 to 10000000"),
    (["--steps", "-1"], "--steps: -1 is out of range"),
    (["--seeds", "0"], "--seeds: 0 is out of range; allowed: an integer from 1 to 100"),
    (["--lr", "nan"], "--lr: nan is out of range; allowed: 0 < lr <= 1"),
    (["--classes", "1"], "--classes: 1 is out of range; allowed: an integer >= 2"),
    (["--trainable", "some"], "--trainable: 'some' is out of range"),
])
def test_demo_options_are_checked_before_any_work_case13(tmp_path, capsys, monkeypatch, flags, expected):
    from clipood import demo
    from clipood.cli import main

    def no_work(*a, **k):
        raise AssertionError("the demo started building its data before checking its options")
    monkeypatch.setattr(demo, "build_emoji", no_work)
    monkeypatch.setattr(demo, "ensure_backbone", no_work)
    code = main(["demo", "--out", str(tmp_path / "demo"), "--no-progress", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"clipood: error: {expected}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "demo").exists()


def test_the_paper_regime_may_hold_out_any_designer():
    """Leave-one-designer-out needs a paper-regime backbone for each designer, the disjoint regime's anchors too."""
    from clipood.errors import ClipoodError
    s = DemoSettings(holdout="noto")
    s.check()
    assert "noto" not in s.align_domains and s.tag == "emoji-without-noto"
    assert "noto" not in s.finetune_domains and "twemoji" not in s.finetune_domains  # the other anchor stays one
    with pytest.raises(ClipoodError, match="cannot be an alignment designer"):
        DemoSettings(holdout="noto", regime="disjoint").check()


def test_the_held_out_table_reads_each_runs_method_not_its_name(tmp_path):
    """An ablation beside the demo's runs ('emoji-clipood-no-avg-...') is not counted as CLIPood."""
    import json

    from clipood.demo import heldout_table
    entry = {"role": "test", "base": 0.5, "new": 0.25, "H": 1 / 3, "accuracy": 0.3}
    for name, method, base in (("emoji-clipood-openmoji-b2n-seed0", "clipood", 0.5),
                               ("emoji-clipood-no-avg-openmoji-b2n-seed0", "clipood-no-avg", 0.9)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text(json.dumps({"method": method}))
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"num_classes": 4, "final": {"openmoji/in": {**entry, "base": base}}}))
    row = next(line for line in heldout_table(tmp_path, "openmoji").splitlines() if line.startswith("| CLIPood"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "50.0" and cells[-1] == "1"  # one run, the real one


def test_a_demo_for_another_held_out_designer_never_rebuilds_the_default_data(tmp_path, monkeypatch):
    """--holdout-domain twemoji needs five designers; building them into the default's emoji-150 replaced the data
    of the default demo's runs (and a run on that folder then trained on twemoji too). One folder per designer set."""
    from clipood import demo as demo_module
    from clipood.data.emoji import DOMAINS
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path))
    roots = {}

    class Stop(Exception):
        pass

    def fake_build(root, **kw):
        roots[holdout] = (Path(root), sorted(kw["domains"]))
        raise Stop

    monkeypatch.setattr(demo_module, "build_emoji", fake_build)
    for holdout in [d.name for d in DOMAINS]:
        with pytest.raises(Stop):
            run_demo(tmp_path / "runs", DemoSettings(holdout=holdout), progress=False, align_only=True)
    default_root, default_domains = roots[DemoSettings().holdout]
    assert default_root == tmp_path / "datasets" / "emoji-150"
    assert default_domains == ["emojione", "fluent", "fluent-mono", "openmoji"]
    for holdout, (root, domains) in roots.items():
        assert holdout in domains
        assert (root == default_root) == (domains == default_domains), holdout
    assert len({root for root, _ in roots.values()}) == len({tuple(d) for _, d in roots.values()})
