"""What every named dataset is (``--dataset NAME``): where it lives, its domains, readable
class names and splits, and the one-line error that says where to put it when missing.

One class per dataset, as DomainBed's ``datasets.py`` and Dassl's registry have; the
families (DomainBed, ImageNet and its shifts, CoOp's base-to-new datasets) subclass
``Benchmark`` in their own modules and the package's ``REGISTRY`` lists them.

DomainBed datasets keep clipood's generic protocol (``make_splits``: per-domain in/out
split, leave-one-domain-out). Datasets that define their own splits (CoOp's split files,
ImageNet's train/val and its shift test sets) return them as ``Predefined`` and
``fixed_splits`` turns them into ``Splits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from ...errors import DataError
from ..folder import ImageIndex, read_class_names
from ..splits import EvalSet, Splits, few_shot, make_splits, training_classes

__all__ = ["Benchmark", "DOCS", "Predefined", "fixed_splits"]

DOCS = "docs/datasets.md"


@dataclass
class Predefined:
    """A dataset's own splits: training images and evaluation sets (with roles and class subsets)."""

    train: list[int]
    evals: list[EvalSet]


class Benchmark:
    """One benchmark dataset. Subclasses set the class attributes and implement ``load``."""

    name: ClassVar[str]  # --dataset name, e.g. 'pacs'
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
    # split by domain (clipood's in/out protocol, which --profile official reads the official code's way) rather than
    # by the dataset's own files (CoOp's split files, ImageNet's val and shift sets)
    domain_split: ClassVar[bool] = False
    # the prompt the paper's official code uses for this dataset (--template auto): CoOp's per-dataset
    # templates (its CUSTOM_TEMPLATES, which the official converter_dassl.py takes) and 'a photo of a {}.'
    # for DomainBed's datasets and ImageNet
    template: ClassVar[str] = "a photo of a {}."

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

    def index(self, root: str | Path, class_names_file: Optional[str | Path] = None
              ) -> tuple[ImageIndex, Optional[Predefined]]:
        """``load``, with the readable class names of ``class_names_file`` (--class-names) when given."""
        index, predefined = self.load(root)
        if class_names_file:
            index.class_names = read_class_names(Path(class_names_file), index.class_folders)
        return index, predefined

    def prepare(self, root: str | Path, *, holdout_domains: list[str], val_fraction: float, split_seed: int,
                base_to_new: bool = False, shots: Optional[int] = None, shot_seed: int = 0,
                class_names_file: Optional[str | Path] = None, protocol: str = "clipood") -> tuple[ImageIndex, Splits]:
        """Index and protocol splits: clipood's (``make_splits``) or the dataset's own (``fixed_splits``)."""
        self.check(root)
        index, predefined = self.index(root, class_names_file)
        if predefined is None:
            splits = make_splits(index, holdout_domains=holdout_domains, val_fraction=val_fraction,
                                 split_seed=split_seed, base_to_new=base_to_new, shots=shots, shot_seed=shot_seed,
                                 protocol=protocol)
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
