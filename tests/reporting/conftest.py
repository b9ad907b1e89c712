"""Report tests share the hand-written runs (``fakes``) and one full report built from them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so the tests here can import ``fakes``

from fakes import PACS, _b2n_domain_runs, _domainbed_runs, _wise_runs  # noqa: E402

from clipood.reporting import build_report  # noqa: E402


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    """Every PACS domain held out in turn (with the pairs leave-one-out needs), WiSE-FT, and OfficeHome
    base-to-new runs evaluated only before and after training."""
    tmp = tmp_path_factory.mktemp("report")
    truth = _domainbed_runs(tmp / "runs", random.Random(2), held_out=tuple(PACS), pairs=True, seeds=(0, 1))
    truth["b2n"] = _b2n_domain_runs(tmp / "runs", random.Random(5))
    _wise_runs(tmp / "runs")
    report = build_report(tmp / "runs", tmp / "out")
    report.truth = truth  # for tests that recompute numbers
    return report


