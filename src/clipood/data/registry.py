"""Named benchmark datasets (``--dataset NAME``): where each lives, its domains, readable
class names and splits, and the one-line error that says where to put it when missing.

With ``--dataset``, ``--root`` is the folder that holds the datasets (DomainBed's
``--data_dir``, CoOp's ``$DATA``); each dataset knows its own sub-folder and layout
(docs/datasets.md, generated from this registry by ``python -m clipood.data.registry``).
One class per dataset, registered by name, as DomainBed's ``datasets.py`` and Dassl's
registry do. Families live in ``data/benchmarks/`` (DomainBed, ImageNet and its shifts,
CoOp's base-to-new datasets).

DomainBed datasets keep clipood's generic protocol (``make_splits``: per-domain in/out
split, leave-one-domain-out). Datasets that define their own splits (CoOp's split files,
ImageNet's train/val and its shift test sets) return them as ``Predefined`` and
``fixed_splits`` turns them into ``Splits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from ..errors import ConfigError, DataError
from .folder import ImageIndex, read_class_names
from .splits import EvalSet, Splits, few_shot, make_splits, training_classes

REGISTRY: dict[str, type["Benchmark"]] = {}
DOCS = "docs/datasets.md"


def register(cls: type["Benchmark"]) -> type["Benchmark"]:
    """Class decorator: make a dataset available as ``--dataset cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"dataset {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def _key(name: str) -> str:
    """Lookup key: case, '-', '_' and spaces do not matter (OfficeHome = office_home)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _load_families() -> None:
    from . import benchmarks  # noqa: F401  (its modules register their classes)


def names() -> list[str]:
    _load_families()
    return list(REGISTRY)


def get(name: str) -> "Benchmark":
    """The dataset registered as ``name`` (or one of its aliases); unknown names list the known ones."""
    _load_families()
    k = _key(name)
    for reg_name, cls in REGISTRY.items():
        if k == _key(reg_name) or k in {_key(a) for a in cls.aliases}:
            return cls()
    raise ConfigError(f"--dataset: unknown dataset {name!r}; known: {', '.join(REGISTRY)}")


@dataclass
class Predefined:
    """A dataset's own splits: training images and evaluation sets (with roles and class subsets)."""

    train: list[int]
    evals: list[EvalSet]


class Benchmark:
    """One benchmark dataset. Subclasses set the class attributes and implement ``load``."""

    name: ClassVar[str]  # registry key, e.g. 'pacs'
    title: ClassVar[str]  # e.g. 'PACS'
    family: ClassVar[str]  # 'DomainBed', 'ImageNet', 'CoOp'
    folders: ClassVar[tuple[str, ...]]  # accepted folder names under --root, canonical first
    url: ClassVar[str]  # official source
    domains: ClassVar[tuple[str, ...]]  # domains of the full dataset, in index order
    num_classes: ClassVar[int]  # classes of the full dataset
    layout: ClassVar[str]  # one line, for errors
    tree: ClassVar[str]  # the expected folder tree, for the docs
    class_source: ClassVar[str]  # where the readable class names come from (docs)
    split_doc: ClassVar[str]  # how train / val / test are made (docs)
    aliases: ClassVar[tuple[str, ...]] = ()
    test_only: ClassVar[bool] = False  # evaluation only (ImageNet shift sets)

    # ------------------------------------------------------------------ location
    def path(self, root: str | Path) -> Path:
        """The dataset folder under ``root``: the first accepted name that exists (else the canonical one)."""
        root = Path(root)
        for f in self.folders:
            if (root / f).is_dir():
                return root / f
        return root / self.folders[0]

    def required(self, root: str | Path) -> list[Path]:
        """Paths that must exist for the dataset to load (checked before any scan)."""
        return [self.path(root)]

    def missing(self, root: str | Path) -> list[Path]:
        return [p for p in self.required(root) if not p.exists()]

    def found(self, root: str | Path) -> bool:
        return not self.missing(root)

    def missing_error(self, path: Path) -> DataError:
        return DataError(f"--dataset {self.name}: {self.title} not found: {path} is missing; expected "
                         f"{self.layout} under --root; get it from {self.url} (layout: {DOCS}#{self.name})")

    def check(self, root: str | Path) -> None:
        missing = self.missing(root)
        if missing:
            raise self.missing_error(missing[0])

    # ------------------------------------------------------------------ loading
    def load(self, root: str | Path) -> tuple[ImageIndex, Optional[Predefined]]:
        """The image index, and the dataset's own splits (None: clipood's in/out protocol)."""
        raise NotImplementedError

    def prepare(self, root: str | Path, *, holdout_domains: list[str], val_fraction: float, split_seed: int,
                base_to_new: bool = False, shots: Optional[int] = None, shot_seed: int = 0,
                class_names_file: Optional[str | Path] = None) -> tuple[ImageIndex, Splits]:
        """Index and protocol splits, as ``scan`` + ``make_splits`` give for a plain folder."""
        self.check(root)
        index, predefined = self.load(root)
        if class_names_file:
            index.class_names = read_class_names(Path(class_names_file), index.class_folders)
        if predefined is None:
            splits = make_splits(index, holdout_domains=holdout_domains, val_fraction=val_fraction,
                                 split_seed=split_seed, base_to_new=base_to_new, shots=shots, shot_seed=shot_seed)
        else:
            splits = fixed_splits(self.name, index, predefined, holdout_domains=holdout_domains,
                                  base_to_new=base_to_new, shots=shots, shot_seed=shot_seed)
        return index, splits


def fixed_splits(name: str, index: ImageIndex, predefined: Predefined, *, holdout_domains: list[str],
                 base_to_new: bool, shots: Optional[int], shot_seed: int) -> Splits:
    """Splits from a dataset's own train/val/test (CoOp protocol): base-to-new and few-shot as
    ``make_splits`` applies them; the test sets are fixed, so nothing is held out by hand."""
    if holdout_domains:
        tests = ", ".join(es.name for es in predefined.evals if es.role == "test")
        raise DataError(f"--holdout-domain: --dataset {name} has fixed test sets ({tests}); "
                        f"leave --holdout-domain out")
    train_classes, base, new = training_classes(index.num_classes, base_to_new)
    allowed = set(train_classes)
    train = sorted(i for i in predefined.train if index.labels[i] in allowed)
    if shots is not None:
        train = few_shot(index, train, shots, shot_seed)
    used = sorted({index.domain_ids[i] for i in train})
    return Splits(train=train, train_domains=[index.domains[d] for d in used], train_classes=train_classes,
                  base_classes=base, new_classes=new, evals=list(predefined.evals))


def prepare_benchmark(name: str, root: str | Path, **options) -> tuple[ImageIndex, Splits]:
    """``--dataset NAME --root ROOT``: the index and splits of a registered dataset."""
    return get(name).prepare(root, **options)


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

Generated from `src/clipood/data/registry.py` and `src/clipood/data/benchmarks/` by
`python -m clipood.data.registry > docs/datasets.md`; a test keeps it in sync.

`--dataset NAME --root DIR` loads a benchmark by name: `DIR` is the folder that holds
your datasets (DomainBed's `--data_dir`, CoOp's `$DATA`), and each dataset lives in its
own sub-folder, laid out as below (the layouts of DomainBed's download script and of
CoOp's `DATASETS.md`, so existing copies work as they are; symbolic links are fine).
Names are case-insensitive and ignore `-` and `_` (`OfficeHome`, `office_home`).
`clipood datasets --root DIR` lists every dataset and whether it was found under `DIR`.
When a dataset is missing, the error names the path that was expected, the layout and
where to download it. Without `--dataset`, `--root` is one dataset folder scanned
generically (`ROOT/<domain>/<class>/<image>` or `ROOT/<class>/<image>`).

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
                  f"- Splits: {b.split_doc}"]
        if len(b.folders) > 1 or b.aliases:
            extra = [f"folder also accepted as {', '.join(f'`{f}`' for f in b.folders[1:])}"] if len(b.folders) > 1 \
                else []
            if b.aliases:
                extra.append(f"name aliases: {', '.join(f'`{a}`' for a in b.aliases)}")
            lines.append(f"- Also: {'; '.join(extra)}")
        lines += ["", "```text", b.tree.strip("\n"), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Run as a script this file is '__main__', not the module the datasets register into.
    from clipood.data import registry as _registry
    print(_registry.datasets_markdown(), end="")
