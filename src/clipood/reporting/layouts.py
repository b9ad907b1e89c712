"""The paper's table layouts, filled with the user's runs and the published numbers beside them.

* Table 1 (DomainBed): per dataset, accuracy on each held-out domain and their average;
  and a summary with one column per dataset.
* Table 2 (ImageNet and its shifts): in-distribution test set(s), each shifted test set,
  their average ("OOD avg"). Any run with several test sets at once lands here.
* Table 3 (base-to-new): base, new and their harmonic mean H per dataset (CoOp).
* Table 4 (held-out domain and new classes at once): base / new / total accuracy on
  each held-out domain.

A cell is mean ± std (or ± standard error) over seeds (one selected run per seed, see
``selection``), with the selected variant beside it where a choice was made. An
average column is computed per seed first (over the columns it averages, only for seeds
that have all of them), then mean ± std over seeds, as DomainBed does. Rows prefixed
"paper:" are the published numbers; Δ is ours minus the paper on the stated column.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

from .records import RunRecord
from .reference import key, load_reference, match
from .stats import Stat, harmonic, mean, stat
from .table import (
    Row,
    Table,
    add_paper_rows,
    cell_variants,
    cells_of,
    common_notes,
    datasets_of,
    domain_order,
    file_key,
    label,
    methods_of,
    ref_value,
    seed_average,
    test_accuracy,
    values_per_seed,
)

__all__ = ["SPLITS", "all_tables", "in_no_table", "paired_runs", "reference_tables", "table1", "table2", "table3",
           "table4"]


def paired_runs(records: list[RunRecord]) -> list[RunRecord]:
    """Leave-one-domain-out's paired runs: two domains held out where the same method, seed and class
    split also hold out each of them alone. They score that selection (``selection``); they are no
    shift of their own, so no table shows them."""
    singles = {(r.dataset, r.method, r.base_to_new, r.seed, r.holdout[0]) for r in records if len(r.holdout) == 1}
    return [r for r in records if len(r.holdout) == 2
            and all((r.dataset, r.method, r.base_to_new, r.seed, d) in singles for d in r.holdout)]


def in_no_table(records: list[RunRecord]) -> list[RunRecord]:
    """Finished runs no layout takes (base-to-new with several held-out domains), paired runs aside."""
    paired = {id(r) for r in paired_runs(records)}
    return [r for r in records if r.base_to_new and len(r.holdout) > 1 and id(r) not in paired]

# ------------------------------------------------------------------------------ Table 1


def _official(records: list[RunRecord]) -> bool:
    """Whether every run split and scored its domain-split data as the paper's official code (--protocol official):
    only such cells are compared with the paper's numbers."""
    return all(r.protocol == "official" for r in records)


def _protocol_note(records: list[RunRecord], paper_split: str) -> str:
    what = "some of these runs use" if any(r.protocol == "official" for r in records) else "these runs use"
    return (f"The paper's numbers are on {paper_split} (its official code's protocol); {what} clipood's protocol "
            f"(--protocol clipood), so neither the paper's number nor Δ is shown here: run with --profile official "
            f"(or --protocol official) to compare, and see the reference section for the published numbers.")


def _coverage(ds_col: str, held: list[str], ref: dict) -> tuple[bool, str]:
    """Whether the held-out domains are the paper's for this dataset, and a note when not."""
    domains = ref.get("domains", {}).get(ds_col)
    if not domains:
        return False, f"The paper's {ds_col} number is an average over domains this report cannot name; not compared."
    missing = [d for d in domains if not any(match(h, {d: domains[d]}) for h in held)]
    if not missing:
        return True, ""
    return False, (f"The paper reports {ds_col} only as the average over its {len(domains)} domains "
                   f"({', '.join(domains)}); these runs hold out {len(held)} (missing: {', '.join(missing)}), so "
                   f"neither its number nor Δ is shown here: the reference section lists it.")


def table1(records: list[RunRecord], variant_of: dict[int, str], error: str = "std") -> list[Table]:
    """Per dataset: accuracy on each held-out domain (+ Avg over several); then the summary over datasets."""
    recs = [r for r in records if not r.base_to_new and len(r.holdout) == 1]
    if not recs:
        return []
    ref = load_reference()["table1"]
    tables, avg_by_dataset, covered = [], {}, {}  # dataset -> method -> seed -> avg; dataset -> same domains
    for ds in datasets_of(recs):
        dr = [r for r in recs if r.dataset == ds]
        held = sorted({r.holdout[0] for r in dr}, key=domain_order(dr))
        col = match(ds, ref["columns"])
        covered[ds], gap_note = _coverage(col, held, ref) if col else (False, "")
        official = _official(dr)
        if covered[ds] and not official:
            covered[ds], gap_note = False, _protocol_note(dr, "the held-out domain's 20 % 'out' split")
        avg_col = ["Avg"] if len(held) > 1 else []
        t = Table(key=f"table1_{file_key(ds)}", kind="table1", dataset=ds,
                  title=f"Table 1 layout: {ds}, accuracy (%) on each held-out domain",
                  label_headers=["method"], columns=held + avg_col,
                  gap_column=(avg_col or held)[0] if covered[ds] else None, seeds=sorted({r.seed for r in dr}),
                  error=error)
        avg_by_dataset[ds] = {}
        for m in methods_of(dr):
            mr = [r for r in dr if r.method == m]
            per_seed = values_per_seed(mr, lambda r: {r.holdout[0]: test_accuracy(r)})
            avg = seed_average(per_seed, held)
            avg_by_dataset[ds][m] = avg
            cells = cells_of(per_seed, held) + ([stat(avg.values(), scale=100)] if avg_col else [])
            t.rows.append(Row([label(m)], cells, method=m,
                              variants=cell_variants(mr, held, lambda r: [r.holdout[0]], variant_of)
                              + [None] * len(avg_col)))
        if covered[ds]:  # the paper's number sits in the column that averages the same domains
            add_paper_rows(t, [([f"paper: {p['method']}"], p.get("clipood"),
                                [None] * (len(t.columns) - 1) + [ref_value(p["values"], col)]) for p in ref["rows"]])
        split = ("the held-out domain's 'out' split (the official code's test set, --protocol official)" if official
                 else "the held-out domain's 'in' split (DomainBed's test number)")
        common_notes(t, f"Accuracy on {split}" + ("; Avg: per seed over the held-out domains." if avg_col else "."),
                     no_paper=gap_note or None)
        tables.append(t)
    datasets = list(avg_by_dataset)
    if len(datasets) < 2:
        return tables  # a summary of one dataset would repeat its table's average
    s = Table(key="table1_summary", kind="table1-summary", title="Table 1 layout: DomainBed summary, accuracy (%) "
              "averaged over held-out domains", label_headers=["method"], columns=datasets + ["Avg"],
              gap_column="Avg", seeds=sorted({r.seed for r in recs}), error=error)
    for m in methods_of(recs):
        per_seed: dict[int, dict] = defaultdict(dict)
        for ds in datasets:
            for seed, v in avg_by_dataset[ds].get(m, {}).items():
                per_seed[seed][ds] = v
        avg = seed_average(per_seed, datasets)
        s.rows.append(Row([label(m)], cells_of(per_seed, datasets) + [stat(avg.values())], method=m,
                          variants=cell_variants([r for r in recs if r.method == m], datasets, lambda r: [r.dataset],
                                                 variant_of) + [None]))
    cols = [match(ds, ref["columns"]) if covered[ds] else None for ds in datasets]
    paper_rows = []
    for p in ref["rows"]:
        cells = [ref_value(p["values"], c) if c else None for c in cols]
        if all(c is not None for c in cols) and sorted(cols) == sorted(ref["columns"]):
            avg = ref_value(p["values"], "Avg")  # all five datasets: the published average
        elif all(c is not None for c in cells):
            avg = Stat(mean(c.mean for c in cells), None, None)  # the average over the datasets shown
        else:
            avg = None
        paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells + [avg]))
    add_paper_rows(s, paper_rows)
    partial = [ds for ds in datasets if not covered[ds]]
    common_notes(s, "Per dataset: the Avg column of its table (mean over held-out domains); Avg: per seed over "
                    "datasets. Paper Avg over the datasets shown.",
                 no_paper=(f"No paper number for {', '.join(partial)}: not every domain of the paper's average is "
                           f"held out (or the name is not the paper's), and so no paper Avg." if partial else None))
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


def table2(records: list[RunRecord], variant_of: dict[int, str], error: str = "std") -> list[Table]:
    paired = {id(r) for r in paired_runs(records)}
    recs = [r for r in records if not r.base_to_new and len(r.holdout) != 1 and id(r) not in paired]
    if not recs:
        return []
    ref = load_reference()["table2"]
    tables = []
    for ds in datasets_of(recs):
        dr = [r for r in recs if r.dataset == ds]
        order = domain_order(dr)
        ids, oods = set(), set()
        for r in dr:
            _, i, o = _shift_values(r)
            ids.update(i)
            oods.update(o)
        id_cols, ood_cols = sorted(ids, key=order), sorted(oods - ids, key=order)
        ood_avg = ["OOD avg"] if len(ood_cols) > 1 else []  # an average of one column would repeat it
        columns = id_cols + ood_cols + ood_avg
        t = Table(key=f"table2_{file_key(ds)}", kind="table2", dataset=ds,
                  title=f"Table 2 layout: {ds}, accuracy (%) in distribution and under shift",
                  label_headers=["method"], columns=columns, gap_column=columns[-1] if columns else None,
                  seeds=sorted({r.seed for r in dr}), error=error)
        for m in methods_of(dr):
            mr = [r for r in dr if r.method == m]
            per_seed = values_per_seed(mr, lambda r: _shift_values(r)[0])
            cells = cells_of(per_seed, id_cols + ood_cols)
            if ood_avg:
                cells.append(stat(seed_average(per_seed, ood_cols).values()))
            t.rows.append(Row([label(m)], cells, method=m, variants=cell_variants(
                mr, id_cols + ood_cols, lambda r: list(_shift_values(r)[0]), variant_of) + [None] * len(ood_avg)))
        if key(ds) in {key(a) for a in ref["datasets"]}:
            matched = [match(c, ref["columns"]) if c != "ID (val)" else None for c in id_cols + ood_cols]
            paper_rows = []
            for p in ref["rows"]:
                cells = [ref_value(p["values"], c) if c else None for c in matched]
                if ood_avg:
                    ood_ref = matched[len(id_cols):]
                    if sorted(c for c in ood_ref if c) == sorted(ref["ood"]) and None not in ood_ref:
                        cells.append(ref_value(p["values"], "OOD avg"))
                    elif ood_ref and None not in ood_ref:
                        cells.append(Stat(mean(ref_value(p["values"], c).mean for c in ood_ref), None, None))
                    else:
                        cells.append(None)
                paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells))
            add_paper_rows(t, paper_rows)
        common_notes(t, "In-distribution columns: test sets of the training domains (or, without one, their 'out' "
                        "validation splits: 'ID (val)'); the others are held-out / shifted test sets"
                        + ("; OOD avg: per seed over the shifted ones." if ood_avg else "."))
        tables.append(t)
    return tables


# ------------------------------------------------------------------------------ Table 3


def _base_new(r: RunRecord) -> tuple[float, float]:
    """Base and new accuracy on the in-distribution test set(s) (ImageNet's shift sets are Table 2's)."""
    es = [e for e in r.entries("test") if e.get("domain") in r.train_domains] or r.test_entries()
    return mean(e.get("base") for e in es), mean(e.get("new") for e in es)


def table3(records: list[RunRecord], variant_of: dict[int, str], error: str = "std") -> list[Table]:
    recs = [r for r in records if r.base_to_new and not r.holdout]
    if not recs:
        return []
    ref = load_reference()["table3"]
    datasets = datasets_of(recs)
    groups = datasets + (["Avg"] if len(datasets) > 1 else [])
    columns = [f"{g} {m}" for g in groups for m in ("Base", "New", "H")]
    t = Table(key="table3_base_to_new", kind="table3", title="Table 3 layout: base-to-new generalization, "
              "accuracy (%) on base classes, new classes and their harmonic mean H", label_headers=["method"],
              columns=columns, seeds=sorted({r.seed for r in recs}), error=error)
    for m in methods_of(recs):
        mr = [r for r in recs if r.method == m]

        def values(r: RunRecord) -> dict[str, float]:
            b, n = _base_new(r)
            return {f"{r.dataset} Base": b, f"{r.dataset} New": n, f"{r.dataset} H": harmonic(b, n)}
        per_seed = values_per_seed(mr, values)
        if len(datasets) > 1:  # CoOp: mean base and mean new over datasets, H of those means
            for seed, v in per_seed.items():
                if all(f"{d} Base" in v for d in datasets):
                    b, n = mean(v[f"{d} Base"] for d in datasets), mean(v[f"{d} New"] for d in datasets)
                    v.update({"Avg Base": b, "Avg New": n, "Avg H": harmonic(b, n)})
        t.rows.append(Row([label(m)], cells_of(per_seed, columns), method=m, variants=cell_variants(
            mr, columns, lambda r: [f"{r.dataset} {x}" for x in ("Base", "New", "H")], variant_of)))
    # The paper's Avg is over CoOp's 11 datasets: never beside an average over other datasets.
    matched = {g: (None if g == "Avg" else match(g, {k: v for k, v in ref["groups"].items() if k != "Avg"}))
               for g in groups}
    gap_group = next((g for g in groups if g != "Avg" and matched[g]), None)
    t.gap_column = f"{gap_group} H" if gap_group else None
    paper_rows = []
    for p in ref["rows"]:
        cells = [ref_value(p["values"], matched[g], m) if matched[g] else None
                 for g in groups for m in ("Base", "New", "H")]
        paper_rows.append(([f"paper: {p['method']}"], p.get("clipood"), cells))
    add_paper_rows(t, paper_rows)
    what = ("Base / New: accuracy on images of base (new) classes among base (new) classes only, H their harmonic "
            "mean (CoOp); on the test split, or without one the 'out' split of every domain.")
    if len(datasets) > 1:
        what += " Avg: per seed, mean Base and mean New over datasets, H of those; the paper's Avg is over CoOp's " \
                "11 datasets, so it is not shown beside it (reference section)."
    common_notes(t, what)
    return [t]


# ------------------------------------------------------------------------------ Table 4


SPLITS = (("Base", "base"), ("New", "new"), ("Total", "accuracy"))


def table4(records: list[RunRecord], variant_of: dict[int, str], error: str = "std") -> list[Table]:
    recs = [r for r in records if r.base_to_new and len(r.holdout) == 1]
    if not recs:
        return []
    ref = load_reference()["table4"]
    datasets = datasets_of(recs)
    cols, col_ref, unofficial = [], [], []
    for ds in datasets:
        dr = [r for r in recs if r.dataset == ds]
        ref_ds = match(ds, {k: v["aliases"] for k, v in ref["datasets"].items()})
        if ref_ds and not _official(dr):
            ref_ds = None  # another test set and scoring than the paper's: not compared
            unofficial.append(ds)
        for h in sorted({r.holdout[0] for r in dr}, key=domain_order(dr)):
            cols.append(f"{ds}: {h}" if len(datasets) > 1 else h)
            dom = match(h, ref["datasets"][ref_ds]["domains"]) if ref_ds else None
            col_ref.append((ref_ds, dom) if dom else None)
    avg_col = ["Avg"] if len(cols) > 1 else []
    columns = cols + avg_col
    t = Table(key="table4_domain_and_class_shift", kind="table4", title="Table 4 layout: held-out domain and new "
              "classes at once, accuracy (%) on the held-out domain", label_headers=["split", "method"],
              columns=columns, gap_column=columns[-1], seeds=sorted({r.seed for r in recs}), error=error)
    colname = {(ds, h): (f"{ds}: {h}" if len(datasets) > 1 else h) for ds in datasets for h in
               {r.holdout[0] for r in recs if r.dataset == ds}}
    for split, metric in SPLITS:
        for m in methods_of(recs):
            mr = [r for r in recs if r.method == m]
            per_seed = values_per_seed(mr, lambda r: {colname[(r.dataset, r.holdout[0])]:
                                                      mean(e.get(metric) for e in r.test_entries())})
            avg = [stat(seed_average(per_seed, cols).values())] if avg_col else []
            t.rows.append(Row([split, label(m)], cells_of(per_seed, cols) + avg, method=m, variants=cell_variants(
                mr, cols, lambda r: [colname[(r.dataset, r.holdout[0])]], variant_of) + [None] * len(avg_col)))
    paper_rows = []
    for p in ref["rows"]:
        cells = [ref_value(p["values"], *c) if c else None for c in col_ref]
        avg = Stat(mean(c.mean for c in cells), None, None) if cells and None not in cells else None
        paper_rows.append(([p["split"], f"paper: {p['method']}"], p.get("clipood"), cells + ([avg] if avg_col else [])))
    add_paper_rows(t, paper_rows)
    t.rows.sort(key=lambda r: [s for s, _ in SPLITS].index(r.labels[0]))  # paper rows beside ours, per split
    if _official(recs):
        what = ("The whole held-out domain (the official code's in-the-wild test, --protocol official); Base / New: "
                "images of the first floor(C/2) (the other) classes, each scored among all classes; Total: all images "
                "among all classes.")
    else:
        what = ("Held-out domain's 'in' split; Base / New: images of base (new) classes scored among base (new) "
                "classes; Total: all classes.")
    common_notes(t, what + (" Avg: per seed over the columns (the paper's over the same domains)." if avg_col else ""),
                 no_paper=_protocol_note([r for r in recs if r.dataset in unofficial],
                                         "the whole held-out domain, base and new classes each scored among all "
                                         "classes") if unofficial else None)
    return [t]


def all_tables(records: list[RunRecord], variant_of: Optional[dict[int, str]] = None,
               error: str = "std") -> list[Table]:
    """Every layout the records fill; ``variant_of`` (selection) labels the variant chosen per cell."""
    v = variant_of or {}
    return table1(records, v, error) + table2(records, v, error) + table3(records, v, error) + table4(records, v, error)


def reference_tables() -> list[Table]:
    """The paper's Tables 1-4 as published, for the report's reference section."""
    ref = load_reference()
    out = []
    t1 = ref["table1"]
    cols = list(t1["columns"]) + ["Avg"]
    out.append(Table("paper_table1", "reference", f"Paper Table 1: {t1['title']}", ["method"], cols,
                     [Row([p["method"]], [ref_value(p["values"], c) for c in cols], "paper", p.get("clipood"))
                      for p in t1["rows"]]))
    t2 = ref["table2"]
    cols = list(t2["columns"]) + ["OOD avg"]
    out.append(Table("paper_table2", "reference", f"Paper Table 2: {t2['title']}", ["method"], cols,
                     [Row([p["method"]], [ref_value(p["values"], c) for c in cols], "paper", p.get("clipood"))
                      for p in t2["rows"]]))
    t3 = ref["table3"]
    cols = [f"{g} {m}" for g in t3["groups"] for m in ("Base", "New", "H")]
    out.append(Table("paper_table3", "reference", f"Paper Table 3: {t3['title']} (Avg: CoOp's 11 datasets)",
                     ["method"], cols,
                     [Row([p["method"]], [ref_value(p["values"], g, m) for g in t3["groups"]
                                          for m in ("Base", "New", "H")], "paper", p.get("clipood"))
                      for p in t3["rows"]]))
    t4 = ref["table4"]
    cols = [(ds, d) for ds, spec in t4["datasets"].items() for d in spec["domains"]]
    out.append(Table("paper_table4", "reference", f"Paper Table 4: {t4['title']}", ["split", "method"],
                     [f"{ds}: {d}" for ds, d in cols],
                     [Row([p["split"], p["method"]], [ref_value(p["values"], ds, d) for ds, d in cols], "paper",
                          p.get("clipood")) for p in t4["rows"]]))
    return out
