"""A report table (rows of mean ± std cells, paper rows, notes) and the helpers every layout uses."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..methods import method_label
from .records import RunRecord, method_order
from .reference import cell
from .stats import ERROR_TEXT, Stat, mean, stat

__all__ = ["Row", "Table", "add_paper_rows", "cell_variants", "cells_of", "common_notes", "datasets_of", "domain_order",
           "file_key", "gap_to_paper", "label", "methods_of", "ref_value", "seed_average", "test_accuracy",
           "values_per_seed", "variants_text"]


@dataclass
class Row:
    labels: list[str]
    cells: list[Optional[Stat]]
    source: str = "ours"  # or "paper"
    method: Optional[str] = None  # clipood method name (ours, or the paper row's counterpart)
    gap: Optional[float] = None  # ours minus the paper counterpart on the table's gap column
    variants: list[Optional[str]] = field(default_factory=list)  # per cell: the selected variant(s), where chosen


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
    error: str = "std"  # what ± shows: stats.ERRORS

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
    return method_label(method)


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


def common_notes(table: Table, what: str, *, no_paper: Optional[str] = None) -> None:
    """What the cells are, what ± is, and how the paper's rows compare (the selection is stated once, above)."""
    seeds = ", ".join(map(str, table.seeds)) or "-"
    table.notes.append(f"{what} Each cell: {ERROR_TEXT[table.error]} over seeds ({seeds}); one number: one seed.")
    if any(v for r in table.rows for v in r.variants):
        table.notes.append("Beside a number: the variant model selection chose (with its number of runs where they "
                           "differ).")
    if table.paper:
        note = "Rows 'paper:' are the published numbers (CLIPood, ICML 2023, CLIP ViT-B/16)"
        if table.error == "sem":
            note += "; their ± is the standard error of the published std (over the paper's 3 runs)"
        if table.has_gap():
            note += f"; Δ = ours − paper on '{table.gap_column}', over the same domains"
        table.notes.append(note + ".")
    if no_paper:
        table.notes.append(no_paper)
    elif not table.paper:
        table.notes.append("No published number matches these dataset / domain names; the paper's tables are "
                           "listed in the reference section.")


def variants_text(records: list[RunRecord], variant_of: dict[int, str]) -> Optional[str]:
    """The variant(s) selection chose for a cell's records: 'lambda=0.1', or each with its number of runs where
    they differ (one run per seed in Tables 1, 3 and 4)."""
    counts = Counter(variant_of[id(r)] for r in records if id(r) in variant_of)
    if not counts:
        return None
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in sorted(counts.items(), key=lambda x: (-x[1],
                                                                                                             x[0])))


def cell_variants(records: list[RunRecord], columns: list[str], columns_of: Callable[[RunRecord], list[str]],
                  variant_of: dict[int, str]) -> list[Optional[str]]:
    """Per column, the variants chosen among the records that fill it (None where nothing was chosen)."""
    return [variants_text([r for r in records if c in columns_of(r)], variant_of) for c in columns]


def ref_value(values: dict, *path: str) -> Optional[Stat]:
    v = values
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return cell(v)
