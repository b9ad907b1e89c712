"""A report table (rows of mean ± std cells, paper rows, notes) and the helpers every layout uses."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..methods import METHODS
from .records import RunRecord, method_order
from .reference import cell
from .stats import Stat, mean, stat

__all__ = ["Row", "Table", "add_paper_rows", "cells_of", "common_notes", "datasets_of", "domain_order", "file_key",
           "gap_to_paper", "label", "methods_of", "ref_value", "seed_average", "test_accuracy", "values_per_seed"]


@dataclass
class Row:
    labels: list[str]
    cells: list[Optional[Stat]]
    source: str = "ours"  # or "paper"
    method: Optional[str] = None  # clipood method name (ours, or the paper row's counterpart)
    gap: Optional[float] = None  # ours minus the paper counterpart on the table's gap column


@dataclass
class Table:
    key: str  # file stem
    kind: str  # table1, table1-summary, table2, table3, table4
    title: str
    label_headers: list[str]
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gap_column: Optional[str] = None
    dataset: Optional[str] = None
    seeds: list[int] = field(default_factory=list)

    @property
    def ours(self) -> list[Row]:
        return [r for r in self.rows if r.source == "ours"]

    @property
    def paper(self) -> list[Row]:
        return [r for r in self.rows if r.source == "paper"]

    def has_gap(self) -> bool:
        return any(r.gap is not None for r in self.rows)

    def column(self, name: str) -> dict[str, Optional[Stat]]:
        i = self.columns.index(name)
        return {" ".join(r.labels): r.cells[i] for r in self.rows}


def label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def methods_of(records: list[RunRecord]) -> list[str]:
    return sorted({r.method for r in records}, key=lambda m: (method_order(m), m))


def datasets_of(records: list[RunRecord]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.dataset not in seen:
            seen.append(r.dataset)
    return seen


def file_key(text: str) -> str:
    """A table's file name part: lower-case letters and digits, '_' between."""
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "x"


def domain_order(records: list[RunRecord]) -> Callable[[str], tuple]:
    order = next((r.domains for r in records if r.domains), [])
    return lambda d: (order.index(d) if d in order else len(order), d)


def values_per_seed(records: list[RunRecord], values: Callable[[RunRecord], dict[str, float]]) -> dict[int, dict]:
    """seed -> column -> value (several records of a seed and column are averaged)."""
    acc: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for col, v in values(r).items():
            acc[r.seed][col].append(v)
    return {s: {c: mean(v) for c, v in cols.items()} for s, cols in acc.items()}


def cells_of(per_seed: dict[int, dict], columns: list[str]) -> list[Optional[Stat]]:
    return [stat(v[c] for v in per_seed.values() if c in v) for c in columns]


def seed_average(per_seed: dict[int, dict], columns: list[str],
              combine: Callable[[list[float]], float] = mean) -> dict[int, float]:
    """Per seed, the average over ``columns``, for seeds that have every one of them."""
    return {s: combine([v[c] for c in columns]) for s, v in per_seed.items() if all(c in v for c in columns)}


def test_accuracy(r: RunRecord) -> float:
    return mean(e.get("accuracy") for e in r.test_entries())


def gap_to_paper(ours: Optional[Stat], paper: Optional[Stat]) -> Optional[float]:
    if ours is None or paper is None:
        return None
    return ours.mean - paper.mean


def add_paper_rows(table: Table, paper_rows: list[tuple[list[str], Optional[str], list[Optional[Stat]]]]) -> None:
    """Append the published rows that have at least one value, and the gap of each matched row of ours."""
    gi = table.columns.index(table.gap_column) if table.gap_column in table.columns else None
    for labels, counterpart, cells in paper_rows:
        if all(c is None for c in cells):
            continue
        table.rows.append(Row(labels=labels, cells=cells, source="paper", method=counterpart))
        if gi is None or counterpart is None:
            continue
        for r in table.ours:
            if r.method == counterpart and r.labels[:-1] == labels[:-1]:
                r.gap = gap_to_paper(r.cells[gi], cells[gi])


def common_notes(table: Table, selection: str, what: str) -> None:
    seeds = ", ".join(map(str, table.seeds)) or "-"
    table.notes.append(f"{what} Each cell: mean ± std (sample std, ddof = 1) over seeds ({seeds}); one number: "
                       f"one seed.")
    table.notes.append(selection)
    if table.paper:
        note = "Rows 'paper:' are the published numbers (CLIPood, ICML 2023, CLIP ViT-B/16)"
        if table.has_gap():
            note += f"; Δ = ours − paper on '{table.gap_column}'"
        table.notes.append(note + ".")
    else:
        table.notes.append("No published number matches these dataset / domain names; the paper's tables are "
                           "listed in the reference section.")


def ref_value(values: dict, *path: str) -> Optional[Stat]:
    v = values
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return cell(v)
