"""The named benchmark datasets of the paper (``--dataset NAME``), one class each.

``domainbed``: PACS, VLCS, OfficeHome, TerraIncognita, DomainNet (Table 1, 4).
``imagenet``: ImageNet and ImageNet-V2, -Sketch, -A, -R (Table 2, 3).
``coop``: the other ten datasets of CoOp's base-to-new protocol (Table 3).

With ``--dataset``, ``--root`` is the folder that holds the datasets (DomainBed's
``--data_dir``, CoOp's ``$DATA``); each dataset knows its own sub-folder and layout
(docs/datasets.md, generated from here by ``python -m clipood.data.datasets``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...errors import ConfigError
from ..folder import AUTO, ImageIndex
from ..splits import Splits
from . import coop, domainbed, imagenet
from .base import DOCS, Benchmark, Predefined, fixed_splits
from .plain import Folder, folders_markdown

# Listing order: DomainBed, ImageNet, CoOp.
REGISTRY: dict[str, type[Benchmark]] = {cls.name: cls for cls in (*domainbed.DATASETS, *imagenet.DATASETS,
                                                                   *coop.DATASETS)}

__all__ = ["Benchmark", "DOCS", "Folder", "Predefined", "REGISTRY", "dataset", "datasets_markdown", "fixed_splits",
           "get", "names", "prepare_dataset", "prompt_template", "splits_by_domain", "status_rows"]


def _key(name: str) -> str:
    """Lookup key: case, '-', '_' and spaces do not matter (OfficeHome = office_home)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> Benchmark:
    """The dataset named ``name`` (or one of its aliases); unknown names list the known ones."""
    k = _key(name)
    for reg_name, cls in REGISTRY.items():
        if k == _key(reg_name) or k in {_key(a) for a in cls.aliases}:
            return cls()
    raise ConfigError(f"--dataset: unknown dataset {name!r}; known: {', '.join(REGISTRY)}")


def dataset(name: Optional[str], layout: str = AUTO) -> Benchmark:
    """The dataset ``--dataset NAME`` names, or without a name the folder ``--root`` itself (laid out as ``layout``)."""
    return Folder(layout) if name is None else get(name)


def splits_by_domain(name: Optional[str]) -> bool:
    """Whether data is split by domain (a folder, or one of DomainBed's datasets) rather than by its own files
    (CoOp's split files, ImageNet's val and shift sets): the two kinds the official code reads differently."""
    return dataset(name).domain_split


def prompt_template(name: Optional[str]) -> str:
    """The prompt the paper's official code uses for the data (``--template auto``)."""
    return dataset(name).template


def prepare_dataset(name: Optional[str], root: str | Path, *, layout: str = AUTO, training: bool = True,
                    **options) -> tuple[ImageIndex, Splits]:
    """The index and splits of ``--dataset NAME --root ROOT``, or of the folder ROOT without a name (a test-only
    dataset cannot train)."""
    bench = dataset(name, layout)
    if training and bench.test_only:
        raise ConfigError(f"--dataset: {bench.name} is a test set only (use it with 'clipood zeroshot' or "
                          f"'clipood eval'); train on 'imagenet', which evaluates its shift sets too")
    return bench.prepare(root, **options)


# ---------------------------------------------------------------------- listing and docs


def status_rows(root: Optional[str | Path] = None) -> list[list[str]]:
    """One row per dataset: name, family, domains, classes, and where it is (or is expected) under root."""
    rows = []
    for n in names():
        b = REGISTRY[n]()
        row = [n, b.family, ", ".join(b.domains), str(b.num_classes)]
        if root is None:
            row.append(b.folders[0])
        else:
            missing = b.missing(root)
            row.append(f"found: {b.path(root)}" if not missing else f"missing: {missing[0]}")
        rows.append(row)
    return rows


INTRO = """# Benchmark datasets

Generated from `src/clipood/data/datasets/` by `python -m clipood.data.datasets > docs/datasets.md`;
a test keeps it in sync.

`--dataset NAME --root DIR` loads a benchmark by name: `DIR` is the folder that holds
your datasets (DomainBed's `--data_dir`, CoOp's `$DATA`), and each dataset lives in its
own sub-folder, laid out as below (the layouts of DomainBed's download script and of
CoOp's `DATASETS.md`, so existing copies work as they are; symbolic links are fine).
Names are case-insensitive and ignore `-` and `_` (`OfficeHome`, `office_home`).
`clipood datasets --root DIR` lists every dataset and whether it was found under `DIR`.
When a dataset is missing, the error names the path that was expected, the layout and
where to download it. Without `--dataset`, `--root` is one dataset folder read with a
folder layout ([below](#folders)).

Protocols:

- **DomainBed datasets** use clipood's leave-one-domain-out protocol exactly as for a
  plain folder: `--holdout-domain D`, every domain split per class into `in`/`out`
  (`--val-fraction`, `--split-seed`), the held-out domain reported on `in` (DomainBed's
  number). `--base-to-new` splits the sorted classes in half (paper Table 4).
- **CoOp datasets** use the dataset's own train / val / test split (CoOp's
  `split_zhou_*.json`, or FGVCAircraft's official split files): training on `train`
  (`--shots 16` for CoOp's few-shot setting), `val` reported as validation, `test` as the
  test number. `--base-to-new`: the first half of the labels (in the split file's label
  order) is base. `--val-fraction`, `--split-seed` and `--holdout-domain` do not apply.
- **ImageNet** trains on `train` and tests on `val` (as CoOp does); the shift sets found
  next to it under the same `--root` (ImageNet-V2, -Sketch, -A, -R) are evaluated with
  it as extra test sets (paper Table 2). ImageNet-A and -R cover 200 of the 1000
  classes: they are scored among their own classes only. The shift sets are also
  registered on their own (`--dataset imagenet-a`, ...) for `clipood zeroshot` /
  `clipood eval` of an ImageNet model; they cannot be trained on.
- `--class-names FILE` overrides the readable names of any dataset
  (`<class id><TAB><name>` lines, the class id being the folder name, WordNet id or the
  split file's class name).

| dataset | family | domains | classes | folder under `--root` |
|---|---|---|---|---|
"""


def datasets_markdown() -> str:
    """docs/datasets.md: every registered dataset's layout, source, domains, classes and splits."""
    lines = [INTRO.rstrip("\n")]
    for n in names():
        b = REGISTRY[n]()
        lines.append(f"| [`{n}`](#{n}) | {b.family} | {', '.join(b.domains)} | {b.num_classes} | "
                     f"`{b.folders[0]}/` |")
    for n in names():
        b = REGISTRY[n]()
        lines += ["", f'<a id="{n}"></a>', f"## {b.title} (`--dataset {n}`)", "",
                  f"- Source: {b.url}",
                  f"- Domains: {', '.join(b.domains)}",
                  f"- Classes: {b.num_classes}; names: {b.class_source}",
                  f"- Splits: {b.split_doc}",
                  f"- Prompt (`--template auto`, the official code's): `{b.template}`"]
        if len(b.folders) > 1 or b.aliases:
            extra = [f"folder also accepted as {', '.join(f'`{f}`' for f in b.folders[1:])}"] if len(b.folders) > 1 \
                else []
            if b.aliases:
                extra.append(f"name aliases: {', '.join(f'`{a}`' for a in b.aliases)}")
            lines.append(f"- Also: {'; '.join(extra)}")
        lines += ["", "```text", b.tree.strip("\n"), "```"]
    return "\n".join(lines + folders_markdown()) + "\n"


