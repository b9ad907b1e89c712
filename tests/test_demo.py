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
    settings = DemoSettings(arch=f"local-dir:{tiny_pretrained}", pretrained="auto", classes=6, steps=2, seeds=2, batch_size=2,
                            lr=1e-3)
    out = tmp_path / "runs"
    table = run_demo(out, settings, data_dir=tmp_path / "emoji", progress=False)
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(METHODS) + 1
    chance = [c.strip() for c in rows.pop().strip("|").split("|")]
    assert chance == ["chance (uniform guess)", "33.3", "33.3", "33.3", "16.7", "-"]  # 6 classes: 3 base, 3 new
    for line, (method, label) in zip(rows, METHODS.items()):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == label
        if method == "zeroshot":  # evaluated by every seed's run before training: no randomness
            assert all(c.endswith("± 0.0") for c in cells[1:5]), line
        assert all(re.fullmatch(r"\d+\.\d ± \d+\.\d", c) for c in cells[1:5]), line  # mean ± std, 2 seeds
        assert cells[5] == "2"
    assert f"{DEFAULT_HOLDOUT} held out" in table
    assert (out / "report" / "index.html").is_file()

    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert len(finished) >= 2 * (len(METHODS) - 1)
    capsys.readouterr()
    run_demo(out, settings, data_dir=tmp_path / "emoji", progress=False, report=False)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")} == finished  # nothing reran
