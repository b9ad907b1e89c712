"""Mean ± standard deviation (or standard error) over seeds, in percent."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Optional

from ..evaluation import harmonic_mean

__all__ = ["ERRORS", "ERROR_TEXT", "Stat", "finite", "fmt_stat", "harmonic", "mean", "stat"]

# What '±' means in a table: the sample standard deviation over seeds (as the paper), or the
# standard error of the mean, std / sqrt(n) with the same sample std (as DomainBed's tables).
ERRORS = ("std", "sem")
ERROR_TEXT = {"std": "mean ± std (sample standard deviation, ddof = 1)",
              "sem": "mean ± standard error (sample std / √n, as DomainBed)"}


@dataclass(frozen=True)
class Stat:
    """A table cell: mean and sample standard deviation (ddof = 1) over n values, in percent."""

    mean: float
    std: Optional[float]  # None when n == 1 or unknown (published numbers without one)
    n: Optional[int]  # None for published numbers

    @property
    def sem(self) -> Optional[float]:
        """Standard error of the mean, std / sqrt(n); None without a std or a count."""
        return None if self.std is None or not self.n else self.std / math.sqrt(self.n)

    def error(self, kind: str = "std") -> Optional[float]:
        if kind not in ERRORS:
            raise ValueError(f"unknown error {kind!r}; known: {', '.join(ERRORS)}")
        return self.std if kind == "std" else self.sem

    def fmt(self, error: str = "std") -> str:
        e = self.error(error)
        return f"{self.mean:.1f}" if e is None else f"{self.mean:.1f} ± {e:.1f}"


def finite(values: Iterable[Optional[float]]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def stat(values: Iterable[Optional[float]], *, scale: float = 100.0) -> Optional[Stat]:
    """Mean ± std of accuracies in [0, 1] (shown in percent); None when there is no value."""
    vals = [scale * v for v in finite(values)]
    if not vals:
        return None
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))


def fmt_stat(values: Iterable[Optional[float]]) -> str:
    """'mean ± std' in percent of accuracies in [0, 1] ('mean' for one value, '-' for none)."""
    s = stat(values)
    return "-" if s is None else s.fmt()


def mean(values: Iterable[Optional[float]]) -> float:
    vals = finite(values)
    return statistics.fmean(vals) if vals else math.nan


def harmonic(a: float, b: float) -> float:
    """H of base and new accuracy (evaluation.harmonic_mean), NaN when either is missing."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return harmonic_mean(a, b)
