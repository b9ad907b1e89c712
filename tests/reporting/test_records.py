"""Finished runs read as records; a damaged run is skipped with a warning naming it, the others reported."""

from __future__ import annotations

import json
import random

import pytest
from fakes import PACS, _domainbed_runs

from clipood.cli import main


def _runs(tmp_path):
    _domainbed_runs(tmp_path / "runs", random.Random(0), held_out=PACS[:1], seeds=(0,))
    return sorted(p.parent for p in (tmp_path / "runs").rglob("results.json"))


def _damage(run, case: str) -> str:
    """Damage one run folder as the issue's cases do; returns what the warning must name."""
    results = run / "results.json"
    if case == "schema":
        results.write_text(json.dumps({"kind": "train", "final": [1, 2, 3]}))
        return "results.json: final is a list, not a mapping of splits"
    if case == "string accuracy":
        r = json.loads(results.read_text())
        split = next(iter(r["final"]))
        r["final"][split]["accuracy"] = "high"
        results.write_text(json.dumps(r))
        return f"results.json: final['{split}'].accuracy is 'high', not a number"
    if case == "list config":
        (run / "config.yaml").write_text("- a\n- b\n")
        return "config.yaml is not a run's config (a mapping of sections)"
    if case == "latin-1 config":
        (run / "config.yaml").write_bytes(b"model:\n  arch: caf\xe9\n")
        return "config.yaml is unreadable ('utf-8' codec can't decode byte 0xe9"
    if case == "list results":
        results.write_text("[1, 2]")
        return "results.json is a JSON list, not an object"
    if case == "bad sidecar":
        (run / "sweep.json").write_text(json.dumps({"method": "clipood"}))
        return "sweep.json: 'dataset' is None"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["schema", "string accuracy", "list config", "latin-1 config", "list results",
                                  "bad sidecar"])
def test_a_damaged_run_is_skipped_with_a_warning_naming_it_case7c(tmp_path, capsys, case):
    runs = _runs(tmp_path)
    victim = runs[0]
    said = _damage(victim, case)
    code = main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--no-plots"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"clipood: warning: report: skipping {victim}: {victim}/{said}" in err, err
    assert "Traceback" not in err
    assert f"Runs: {len(runs) - 1} finished run(s)" in (tmp_path / "rep" / "report.md").read_text()


def test_binary_bytes_in_metrics_jsonl_are_left_out_of_the_curves_case7c(tmp_path, capsys):
    runs = _runs(tmp_path)
    for run in runs:  # every run: the curves read the selected ones
        (run / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\xfe\x00binary\n{"step": 2, "loss": "x"}\n'
                                            b'{"step": 3, "loss": 1.5}\n')
    code = main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    assert "metrics.jsonl: 2 line(s) that are not metrics records left out of the curves" in err
