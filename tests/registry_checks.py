"""What every registry entry with its own parameter must give without any other edit: its option in --help and
docs/configuration.md, and one sweep run per value of its parameter (tests/test_losses.py, test_averaging.py)."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def assert_documented(entry: str, flag: str, doc_row: str) -> None:
    """``entry`` and ``--flag`` in ``clipood train --help``; ``doc_row`` (the start of its row) in the docs."""
    from clipood.cli import build_parser
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert entry in help_text and f"--{flag}" in help_text
    docs = DOCS.read_text(encoding="utf-8")
    assert doc_row in docs and f"'{entry}'" in docs


def sweep_runs(tmp_path, root, methods: list[str], method_overrides: dict, grid: dict) -> dict:
    """The planned runs of a sweep over ``grid``, by method: {method: [(run name, config)], ...}."""
    from clipood.sweep import plan, spec_from_dict
    spec = spec_from_dict({"output_dir": str(tmp_path / "runs"), "methods": methods,
                           "datasets": [{"name": "d", "root": str(root)}], "holdout": ["sketch"],
                           "method_overrides": method_overrides, "grid": grid,
                           "overrides": {"model": {"pretrained": "none"}}})
    runs = plan(spec)
    return {m: sorted(((r.name, r.cfg) for r in runs if r.method.name == m), key=lambda x: x[0]) for m in methods}
