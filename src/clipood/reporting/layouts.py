"""The paper's table layouts, filled with the user's runs and the published numbers beside them.

* Table 1 (DomainBed): per dataset, accuracy on each held-out domain and their average;
  and a summary with one column per dataset.
* Table 2 (ImageNet and its shifts): in-distribution test set(s), each shifted test set,
  their average ("OOD avg"). Any run with several test sets at once lands here.
* Table 3 (base-to-new): base, new and their harmonic mean H per dataset (CoOp).
* Table 4 (held-out domain and new classes at once): base / new / total accuracy on
  each held-out domain.

A cell is mean ± std over seeds (one selected run per seed, see ``selection``). An
average column is computed per seed first (over the columns it averages, only for seeds
that have all of them), then mean ± std over seeds, as DomainBed does. Rows prefixed
"paper:" are the published numbers; Δ is ours minus the paper on the stated column.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..methods import METHODS
from .records import RunRecord, method_order
from .reference import cell, key, load_reference, match
from .stats import Stat, harmonic, mean, stat


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


def _methods(records: list[RunRecord]) -> list[str]:
    return sorted({r.method for r in records}, key=lambda m: (method_order(m), m))


def _datasets(records: list[RunRecord]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.dataset not in seen:
            seen.append(r.dataset)
    return seen


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "x"


def _domain_order(records: list[RunRecord]) -> Callable[[str], tuple]:
    order = next((r.domains for r in records if r.domains), [])
    return lambda d: (order.index(d) if d in order else len(order), d)


def _per_seed(records: list[RunRecord], values: Callable[[RunRecord], dict[str, float]]) -> dict[int, dict]:
    """seed -> column -> value (several records of a seed and column are averaged)."""
    acc: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for col, v in values(r).items():
            acc[r.seed][col].append(v)
    return {s: {c: mean(v) for c, v in cols.items()} for s, cols in acc.items()}


def _cells(per_seed: dict[int, dict], columns: list[str]) -> list[Optional[Stat]]:
    return [stat(v[c] for v in per_seed.values() if c in v) for c in columns]


def _seed_avg(per_seed: dict[int, dict], columns: list[str],
              combine: Callable[[list[float]], float] = mean) -> dict[int, float]:
    """Per seed, the average over ``columns``, for seeds that have every one of them."""
    return {s: combine([v[c] for c in columns]) for s, v in per_seed.items() if all(c in v for c in columns)}


def _test_accuracy(r: RunRecord) -> float:
    return mean(e.get("accuracy") for e in r.test_entries())


def _gap(ours: Optional[Stat], paper: Optional[Stat]) -> Optional[float]:
    if ours is None or paper is None:
        return None
    return ours.mean - paper.mean


def _add_paper_rows(table: Table, paper_rows: list[tuple[list[str], Optional[str], list[Optional[Stat]]]]) -> None:
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
                r.gap = _gap(r.cells[gi], cells[gi])


def _common_notes(table: Table, selection: str, what: str) -> None:
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


def _ref_value(values: dict, *path: str) -> Optional[Stat]:
    v = values
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return cell(v)


# ------------------------------------------------------------------------------ Table 1


def table1(records: list[RunRecord], selection: str) -> list[Table]:
    """Per dataset: accuracy on each held-out domain + Avg; then the summary over datasets."""
    recs = [r for r in records if not r.base_to_new and len(r.holdout) == 1]
    if not recs:
        return []
    ref = load_reference()["table1"]
    tables, avg_by_dataset = [], {}  # dataset -> method -> seed -> avg
    for ds in _datasets(recs):
        dr = [r for r in recs if r.dataset == ds]
        held = sorted({r.holdout[0] for r in dr}, key=_domain_order(dr))
        t = Table(key=f"table1_{_slug(ds)}", kind="table1", dataset=ds,
                  title=f"Table 1 layout: {ds}, accuracy (%) on each held-out domain",
                  label_headers=["method"], columns=held + ["Avg"], gap_column="Avg",
                  seeds=sorted({r.seed for r in dr}))
        avg_by_dataset[ds] = {}
        for m in _methods(dr):
            per_seed = _per_seed([r for r in dr if r.method == m], lambda r: {r.holdout[0]: _test_accuracy(r)})
            avg = _seed_avg(per_seed, held)
            avg_by_dataset[ds][m] = avg
            t.rows.append(Row([label(m)], _cells(per_seed, held) + [stat(avg.values(), scale=100)], method=m))
        col = match(ds, ref["columns"])
        _add_paper_rows(t, [([f"paper: {p['method']}"], p.get("clipood"),
                             [None] * len(held) + [_ref_value(p["values"], col) if col else None])
                            for p in ref["rows"]])
        _common_notes(t, selection, "Accuracy on the held-out domain's 'in' split (DomainBed's test number); Avg: "
                                    "per seed over the held-out domains.")
        tables.append(t)

    datasets = list(avg_by_dataset)
    s = Table(key="table1_summary", kind="table1-summary", title="Table 1 layout: DomainBed summary, accuracy (%) "
              "averaged over held-out domains", label_headers=["method"], columns=datasets + ["Avg"],
              gap_column="Avg", seeds=sorted({r.seed for r in recs}))
    for m in _methods(recs):
        per_seed: dict[int, dict] = defaultdict(dict)
        for ds in datasets:
            for seed, v in avg_by_dataset[ds].get(m, {}).items():
                per_seed[seed][ds] = v
        avg = _seed_avg(per_seed, datasets)
        s.rows.append(Row([label(m)], _cells(per_seed, datasets) + [stat(avg.values())], method=m))
    cols = [match(ds, ref["columns"]) for ds in datasets]
    paper_rows = []
    for p in ref["rows"]:
        cells = [_ref_value(p["values"], c) if c else None for c in cols]
        if all(c is not None for c in cols) and sorted(cols) == sorted(ref["columns"]):
            avg = _ref_value(p["values"], "Avg")  # all five datasets: the published average
        elif cols and all(c is not None for c in cells):
            avg = Stat(mean(c.mean for c in cells), None, None)  # the average over the datasets shown
        else:
            avg = None
        paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells + [avg]))
    _add_paper_rows(s, paper_rows)
    _common_notes(s, selection, "Per dataset: the Avg column of its table (mean over held-out domains); Avg: per "
                                "seed over datasets. Paper Avg over the datasets shown.")
    return tables + [s]


# ------------------------------------------------------------------------------ Table 2


def _shift_values(r: RunRecord) -> tuple[dict[str, float], list[str], list[str]]:
    """Column values of a run with several test sets: in-distribution columns and shifted ones."""
    vals: dict[str, list] = defaultdict(list)
    ids, oods = [], []
    for e in r.entries("test"):
        dom = e.get("domain", "?")
        vals[dom].append(e.get("accuracy"))
        (ids if dom in r.train_domains else oods).append(dom)
    if not ids and r.entries("val"):
        vals["ID (val)"] = [mean(e.get("accuracy") for e in r.entries("val"))]
        ids.append("ID (val)")
    return {c: mean(v) for c, v in vals.items()}, ids, oods


def table2(records: list[RunRecord], selection: str) -> list[Table]:
    recs = [r for r in records if not r.base_to_new and len(r.holdout) != 1]
    if not recs:
        return []
    ref = load_reference()["table2"]
    tables = []
    for ds in _datasets(recs):
        dr = [r for r in recs if r.dataset == ds]
        order = _domain_order(dr)
        ids, oods = set(), set()
        for r in dr:
            _, i, o = _shift_values(r)
            ids.update(i)
            oods.update(o)
        id_cols, ood_cols = sorted(ids, key=order), sorted(oods - ids, key=order)
        columns = id_cols + ood_cols + (["OOD avg"] if ood_cols else [])
        t = Table(key=f"table2_{_slug(ds)}", kind="table2", dataset=ds,
                  title=f"Table 2 layout: {ds}, accuracy (%) in distribution and under shift",
                  label_headers=["method"], columns=columns, gap_column="OOD avg" if ood_cols else (id_cols[-1] if id_cols else None),
                  seeds=sorted({r.seed for r in dr}))
        for m in _methods(dr):
            per_seed = _per_seed([r for r in dr if r.method == m], lambda r: _shift_values(r)[0])
            cells = _cells(per_seed, id_cols + ood_cols)
            if ood_cols:
                cells.append(stat(_seed_avg(per_seed, ood_cols).values()))
            t.rows.append(Row([label(m)], cells, method=m))
        if key(ds) in {key(a) for a in ref["datasets"]}:
            matched = [match(c, ref["columns"]) if c != "ID (val)" else None for c in id_cols + ood_cols]
            paper_rows = []
            for p in ref["rows"]:
                cells = [_ref_value(p["values"], c) if c else None for c in matched]
                if ood_cols:
                    ood_ref = matched[len(id_cols):]
                    if sorted(c for c in ood_ref if c) == sorted(ref["ood"]) and None not in ood_ref:
                        cells.append(_ref_value(p["values"], "OOD avg"))
                    elif ood_ref and None not in ood_ref:
                        cells.append(Stat(mean(_ref_value(p["values"], c).mean for c in ood_ref), None, None))
                    else:
                        cells.append(None)
                paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells))
            _add_paper_rows(t, paper_rows)
        _common_notes(t, selection, "In-distribution columns: test sets of the training domains (or, without one, "
                                    "their 'out' validation splits: 'ID (val)'); the others are held-out / shifted "
                                    "test sets; OOD avg: per seed over the shifted ones.")
        tables.append(t)
    return tables


# ------------------------------------------------------------------------------ Table 3


def _base_new(r: RunRecord) -> tuple[float, float]:
    """Base and new accuracy on the in-distribution test set(s) (ImageNet's shift sets are Table 2's)."""
    es = [e for e in r.entries("test") if e.get("domain") in r.train_domains] or r.test_entries()
    return mean(e.get("base") for e in es), mean(e.get("new") for e in es)


def table3(records: list[RunRecord], selection: str) -> list[Table]:
    recs = [r for r in records if r.base_to_new and not r.holdout]
    if not recs:
        return []
    ref = load_reference()["table3"]
    datasets = _datasets(recs)
    groups = datasets + (["Avg"] if len(datasets) > 1 else [])
    columns = [f"{g} {m}" for g in groups for m in ("Base", "New", "H")]
    t = Table(key="table3_base_to_new", kind="table3", title="Table 3 layout: base-to-new generalization, "
              "accuracy (%) on base classes, new classes and their harmonic mean H", label_headers=["method"],
              columns=columns, seeds=sorted({r.seed for r in recs}))
    for m in _methods(recs):
        def values(r: RunRecord) -> dict[str, float]:
            b, n = _base_new(r)
            return {f"{r.dataset} Base": b, f"{r.dataset} New": n, f"{r.dataset} H": harmonic(b, n)}
        per_seed = _per_seed([r for r in recs if r.method == m], values)
        if len(datasets) > 1:  # CoOp: mean base and mean new over datasets, H of those means
            for seed, v in per_seed.items():
                if all(f"{d} Base" in v for d in datasets):
                    b, n = mean(v[f"{d} Base"] for d in datasets), mean(v[f"{d} New"] for d in datasets)
                    v.update({"Avg Base": b, "Avg New": n, "Avg H": harmonic(b, n)})
        t.rows.append(Row([label(m)], _cells(per_seed, columns), method=m))
    matched = {g: ("Avg" if g == "Avg" else match(g, {k: v for k, v in ref["groups"].items() if k != "Avg"}))
               for g in groups}
    gap_group = next((g for g in groups if g != "Avg" and matched[g]), None)
    t.gap_column = f"{gap_group} H" if gap_group else None
    paper_rows = []
    for p in ref["rows"]:
        cells = [_ref_value(p["values"], matched[g], m) if matched[g] else None
                 for g in groups for m in ("Base", "New", "H")]
        paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells))
    _add_paper_rows(t, paper_rows)
    what = ("Base / New: accuracy on images of base (new) classes among base (new) classes only, H their harmonic "
            "mean (CoOp); on the test split, or without one the 'out' split of every domain.")
    if len(datasets) > 1:
        what += " Avg: per seed, mean Base and mean New over datasets, H of those; the paper's Avg is over CoOp's " \
                "11 datasets."
    _common_notes(t, selection, what)
    return [t]


# ------------------------------------------------------------------------------ Table 4


SPLITS = (("Base", "base"), ("New", "new"), ("Total", "accuracy"))


def table4(records: list[RunRecord], selection: str) -> list[Table]:
    recs = [r for r in records if r.base_to_new and len(r.holdout) == 1]
    if not recs:
        return []
    ref = load_reference()["table4"]
    datasets = _datasets(recs)
    cols, col_ref = [], []
    for ds in datasets:
        dr = [r for r in recs if r.dataset == ds]
        ref_ds = match(ds, {k: v["aliases"] for k, v in ref["datasets"].items()})
        for h in sorted({r.holdout[0] for r in dr}, key=_domain_order(dr)):
            cols.append(f"{ds}: {h}" if len(datasets) > 1 else h)
            dom = match(h, ref["datasets"][ref_ds]["domains"]) if ref_ds else None
            col_ref.append((ref_ds, dom) if dom else None)
    columns = cols + ["Avg"]
    t = Table(key="table4_domain_and_class_shift", kind="table4", title="Table 4 layout: held-out domain and new "
              "classes at once, accuracy (%) on the held-out domain", label_headers=["split", "method"],
              columns=columns, gap_column="Avg", seeds=sorted({r.seed for r in recs}))
    colname = {(ds, h): (f"{ds}: {h}" if len(datasets) > 1 else h) for ds in datasets for h in
               {r.holdout[0] for r in recs if r.dataset == ds}}
    for split, metric in SPLITS:
        for m in _methods(recs):
            per_seed = _per_seed([r for r in recs if r.method == m],
                                 lambda r: {colname[(r.dataset, r.holdout[0])]:
                                            mean(e.get(metric) for e in r.test_entries())})
            t.rows.append(Row([split, label(m)], _cells(per_seed, cols) + [stat(_seed_avg(per_seed, cols).values())],
                              method=m))
    paper_rows = []
    for p in ref["rows"]:
        cells = [_ref_value(p["values"], *c) if c else None for c in col_ref]
        avg = Stat(mean(c.mean for c in cells), None, None) if cells and None not in cells else None
        paper_rows.append(([p["split"], f"paper: {p['method']}"], p.get("clipood"), cells + [avg]))
    _add_paper_rows(t, paper_rows)
    t.rows.sort(key=lambda r: [s for s, _ in SPLITS].index(r.labels[0]))  # paper rows beside ours, per split
    _common_notes(t, selection, "Held-out domain's 'in' split; Base / New: images of base (new) classes scored among "
                                "base (new) classes; Total: all classes. Avg: per seed over the columns.")
    return [t]


def all_tables(records: list[RunRecord], selection: str) -> list[Table]:
    return table1(records, selection) + table2(records, selection) + table3(records, selection) + \
        table4(records, selection)


def reference_tables() -> list[Table]:
    """The paper's Tables 1-4 as published, for the report's reference section."""
    ref = load_reference()
    out = []
    t1 = ref["table1"]
    cols = list(t1["columns"]) + ["Avg"]
    out.append(Table("paper_table1", "reference", f"Paper Table 1: {t1['title']}", ["method"], cols,
                     [Row([p["method"]], [_ref_value(p["values"], c) for c in cols], "paper", p.get("clipood"))
                      for p in t1["rows"]]))
    t2 = ref["table2"]
    cols = list(t2["columns"]) + ["OOD avg"]
    out.append(Table("paper_table2", "reference", f"Paper Table 2: {t2['title']}", ["method"], cols,
                     [Row([p["method"]], [_ref_value(p["values"], c) for c in cols], "paper", p.get("clipood"))
                      for p in t2["rows"]]))
    t3 = ref["table3"]
    cols = [f"{g} {m}" for g in t3["groups"] for m in ("Base", "New", "H")]
    out.append(Table("paper_table3", "reference", f"Paper Table 3: {t3['title']} (Avg: CoOp's 11 datasets)",
                     ["method"], cols,
                     [Row([p["method"]], [_ref_value(p["values"], g, m) for g in t3["groups"]
                                          for m in ("Base", "New", "H")], "paper", p.get("clipood"))
                      for p in t3["rows"]]))
    t4 = ref["table4"]
    cols = [(ds, d) for ds, spec in t4["datasets"].items() for d in spec["domains"]]
    out.append(Table("paper_table4", "reference", f"Paper Table 4: {t4['title']}", ["split", "method"],
                     [f"{ds}: {d}" for ds, d in cols],
                     [Row([p["split"], p["method"]], [_ref_value(p["values"], ds, d) for ds, d in cols], "paper",
                          p.get("clipood")) for p in t4["rows"]]))
    return out
