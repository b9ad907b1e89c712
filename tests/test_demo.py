"""The first-run job, shrunk: emoji slice, tiny backbone, two seeds, a few steps."""

from __future__ import annotations

import re

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


def test_demo_aligns_its_backbone_on_designers_it_never_fine_tunes_or_tests_on(tmp_path, capsys):
    """The protocol of the default job: alignment, fine-tuning and held-out designers are disjoint."""
    import json

    from clipood.demo import check_protocol
    from clipood.errors import ClipoodError
    from clipood.model.weights import installed_dir
    _sources_or_skip()
    s = DemoSettings(arch="clipood-tiny-towers", pretrained="emoji-test", align_from="none", classes=6, steps=2,
                     seeds=1, batch_size=2, workers=0, align_steps=5, align_batch=8, align_val_size=8)
    assert s.finetune_domains == ["emojione", "fluent", "fluent-mono"] and s.holdout == DEFAULT_HOLDOUT
    run_demo(tmp_path / "runs", s, data_dir=tmp_path / "emoji", progress=False, report=False)
    record = json.loads((installed_dir("clipood-tiny-towers", "emoji-test") / "clipood_pretrain.json").read_text())
    aligned = set(record["data"]["train_pairs_per_domain"])
    assert aligned == {"noto", "twemoji"} and record["towers"] == {**record["towers"], "image": "locked",
                                                                   "text": "locked"}
    benchmark = json.loads((tmp_path / "emoji" / "manifest.json").read_text())["domains"]
    assert set(benchmark) == {*s.finetune_domains, DEFAULT_HOLDOUT} and not aligned & set(benchmark)
    assert "aligned on noto, twemoji" in capsys.readouterr().out

    leaky = dict(record, data={**record["data"], "train_pairs_per_domain": {"noto": 3, "fluent": 3}})
    with pytest.raises(ClipoodError, match="aligned on fluent, which the demo fine-tunes on"):
        check_protocol(s, leaky, "somewhere")
    leaky["data"]["train_pairs_per_domain"] = {"openmoji": 3}
    with pytest.raises(ClipoodError, match="trained on the held-out designer 'openmoji'"):
        check_protocol(s, leaky, "somewhere")


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
