"""What the runs were: backbone, weights, steps, learning rate, batch, the hyper-parameters of their loss and
averager (from the registries) and seeds per dataset and method, from each run's config.yaml (else results.json), shown beside the results because
the paper's ViT-B/16 numbers stand next to them and a reader must see what differs."""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from .records import HYPERPARAMETERS, RunRecord
from .reference import settings as paper_settings
from .table import datasets_of, label, methods_of
from .text import markdown_table

__all__ = ["HEADERS", "paper_line", "settings_html", "settings_markdown", "settings_rows"]

HEADERS = ["dataset", "method", "backbone", "weights", "steps", "lr", "batch", "hyper-parameters", "seeds", "runs"]


def _values(values: list[Any], fmt=str) -> str:
    """Distinct values in order of first appearance ('-' when no run says)."""
    seen = list(dict.fromkeys(fmt(v) for v in values if v is not None))
    return ", ".join(seen) or "-"


def _batch(r: RunRecord) -> Any:
    b = r.hparams.get("batch_size")
    if b is None:
        return None
    n = len(r.train_domains)
    text = f"{b} × {n} domains" if n > 1 else str(b)
    accum = r.hparams.get("accum_steps")
    return text + (f" ({accum} micro-batches)" if accum and int(accum) > 1 else "")


def _hyperparameters(runs: list[RunRecord]) -> str:
    """The values of the hyper-parameters the runs' losses and averagers read (their registries), e.g.
    'lambda 0.3, beta 0.1 / 0.5' where runs differ."""
    parts = []
    for _, p, reg in HYPERPARAMETERS:
        values = [r.hparams.get(p.option) for r in runs if p.variant and r.hparams.get(reg.section) in reg.users(p.name)]
        shown = _values(values, lambda v: f"{v:g}" if isinstance(v, float) else str(v))
        if shown != "-":
            parts.append(f"{p.option} {shown.replace(', ', ' / ')}")
    return ", ".join(parts) or "-"


def settings_rows(records: list[RunRecord]) -> list[list[str]]:
    """One row per (dataset, method): the distinct values of its runs (a sweep's variants list several)."""
    rows = []
    for ds in datasets_of(records):
        dr = [r for r in records if r.dataset == ds]
        for m in methods_of(dr):
            mr = [r for r in dr if r.method == m]
            trained = [r for r in mr if r.kind != "zeroshot"]
            by_seed: dict[int, int] = defaultdict(int)
            for r in mr:
                by_seed[r.seed] += 1
            steps = _values([r.hparams.get("steps") for r in trained]) if trained else "0 (pre-trained model)"
            rows.append([ds, label(m), _values([r.hparams.get("arch") for r in mr]),
                         _values([r.hparams.get("pretrained") for r in mr]), steps,
                         _values([r.hparams.get("lr") for r in trained], lambda v: f"{float(v):g}"),
                         _values([_batch(r) for r in trained]), _hyperparameters([r for r in mr if r.kind == "train"]),
                         ", ".join(map(str, sorted(by_seed))),
                         str(len({r.path for r in mr if not r.derived}) or "from the training runs")])
    return rows


def paper_line() -> str:
    return f"The paper's numbers beside them: {paper_settings()}."


def settings_markdown(records: list[RunRecord]) -> str:
    return "\n".join([markdown_table(HEADERS, settings_rows(records)), "",
                      f"- {paper_line()} batch: images per training domain per step × training domains."]) + "\n"


def settings_html(records: list[RunRecord]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<{'th' if i < 2 else 'td'}>{e(c)}</{'th' if i < 2 else 'td'}>"
                                    for i, c in enumerate(row)) + "</tr>" for row in settings_rows(records))
    return (f'<div class="scroll"><table class="settings" id="settings"><thead><tr>'
            f'{head}</tr></thead><tbody>{body}</tbody></table></div><ul class="notes"><li>{e(paper_line())} batch: '
            f"images per training domain per step × training domains.</li></ul>")
