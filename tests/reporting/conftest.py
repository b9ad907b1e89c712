"""Report tests share the hand-written runs (``fakes``) and one full report built from them."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so the tests here can import ``fakes``

from fakes import _domainbed_runs, _wise_runs  # noqa: E402

from clipood.reporting import build_report  # noqa: E402


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    _domainbed_runs(tmp / "runs", random.Random(2))
    _wise_runs(tmp / "runs")
    return build_report(tmp / "runs", tmp / "out")


