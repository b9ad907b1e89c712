"""ImageNet and its four shift test sets (paper Table 2), in CoOp's ``$DATA`` layout.

Classes are WordNet ids (n01440764, ...). Their sorted order is ImageNet's label order;
readable names are CLIP's ImageNet class names (``open_clip.zero_shot_metadata``,
indexed in that order). The 1000 ids and the 200-class subsets of ImageNet-A and -R
ship as package data. ImageNet-V2 names its class folders 0..999 (label indices).

'imagenet' trains on train/ and tests on val/ (CoOp uses val as the test set); the shift
sets found under the same root are extra test sets, each scored among its own classes
(A and R: their 200). Each shift set is also a test-only dataset of its own.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import ClassVar, Optional

from ...errors import DataError
from ..folder import ImageIndex, class_images, make_index
from ..images import is_image_file
from ..splits import EvalSet
from .base import DOCS, Benchmark, Predefined

__all__ = ["CLASS_SOURCE", "COOP_DATASETS", "DATASETS", "ImageNet", "ImageNetA", "ImageNetR", "ImageNetShift",
           "ImageNetSketch", "ImageNetV2", "PartialImageNet", "SHIFT_SETS", "imagenet_class_names", "imagenet_wnids"]

COOP_DATASETS = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
CLASS_SOURCE = ("CLIP's ImageNet class names (`open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES`, the list of "
                "CLIP's prompt-engineering notebook that CoOp's `classnames.txt` copies), matched to the sorted "
                "WordNet ids; a `classnames.txt` in the folder is not needed. As in CLIP's and CoOp's "
                "evaluations, two pairs of classes share a name there ('missile', 'sunglasses')")


class PartialImageNet(UserWarning):
    """The ImageNet copy lacks some classes or shift sets; the run uses what is there."""


@lru_cache(maxsize=None)
def _package_list(filename: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in label order (sorted)."""
    return _package_list("imagenet_wnids.txt")


@lru_cache(maxsize=None)
def imagenet_class_names() -> dict[str, str]:
    """WordNet id -> CLIP's readable class name."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    wnids = imagenet_wnids()
    if len(IMAGENET_CLASSNAMES) != len(wnids):  # pragma: no cover - guards an open_clip change
        raise DataError(f"open_clip's IMAGENET_CLASSNAMES has {len(IMAGENET_CLASSNAMES)} names, expected {len(wnids)}")
    return dict(zip(wnids, IMAGENET_CLASSNAMES))


def _first_dir(base: Path, candidates: tuple[str, ...]) -> Path:
    for c in candidates:
        if (base / c).is_dir():
            return base / c
    return base / candidates[0]


class ImageNet(Benchmark):
    name = "imagenet"
    title = "ImageNet"
    family = "ImageNet"
    folders = ("imagenet",)
    url = "https://image-net.org/download.php (ILSVRC 2012 train and val)"
    num_classes = 1000
    layout = "imagenet/images/{train,val}/<wnid>/<image> (or imagenet/{train,val}/<wnid>/<image>)"
    class_source = CLASS_SOURCE
    split_doc = ("train on `train/` (`--shots 16` for CoOp's few-shot setting), test on `val/` (`imagenet/val`, "
                 "CoOp's test set; no validation split); the shift sets found under the same `--root` are extra "
                 "test sets (`imagenet-v2/test`, `imagenet-sketch/test`, `imagenet-a/test`, `imagenet-r/test`), "
                 "A and R scored among their 200 classes. `--base-to-new`: base = the first 500 WordNet ids.")
    tree = """imagenet/
|-- images/
|   |-- train/          (1000 folders n01440764, n01443537, ..., images inside)
|   |-- val/            (the same 1000 folders: val images sorted into class folders)
imagenetv2/ imagenet-sketch/ imagenet-adversarial/ imagenet-rendition/   (optional shift sets, see below)"""
    splits_dirs: ClassVar[dict[str, tuple[str, ...]]] = {"train": ("images/train", "train"),
                                                         "val": ("images/val", "val")}

    @property
    def domains(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("imagenet",) + tuple(s.name for s in SHIFT_SETS)

    def split_dir(self, root: str | Path, split: str) -> Path:
        return _first_dir(self.path(root), self.splits_dirs[split])

    def required(self, root: str | Path) -> list[Path]:
        return [self.path(root), self.split_dir(root, "train"), self.split_dir(root, "val")]

    def _wnid_folders(self, folder: Path, known: set[str]) -> dict[str, list[Path]]:
        loose = [p for p in folder.iterdir() if p.is_file() and is_image_file(p)]
        if loose:
            raise DataError(f"{folder}: holds images directly ({loose[0].name}, ...); ImageNet {folder.name} images "
                            f"must be sorted into one folder per WordNet id (e.g. with the 'valprep.sh' script) "
                            f"(layout: {DOCS}#imagenet)")
        found = class_images(folder, desc=f"index ImageNet/{folder.name}")
        for w in found:
            if w not in known:
                raise DataError(f"{folder / w}: '{w}' is not an ImageNet-1k class; ImageNet class folders are "
                                f"WordNet ids (layout: {DOCS}#imagenet)")
        return found

    def load(self, root: str | Path) -> tuple[ImageIndex, Optional[Predefined]]:
        all_names = imagenet_class_names()
        train_dir, val_dir = self.split_dir(root, "train"), self.split_dir(root, "val")
        train = self._wnid_folders(train_dir, set(all_names))
        if not train:
            raise DataError(f"{train_dir}: no class folders; expected {self.layout} (layout: {DOCS}#imagenet)")
        classes = sorted(train)
        if len(classes) < len(all_names):
            warnings.warn(f"ImageNet: {train_dir} has {len(classes)} of {len(all_names)} class folders; "
                          f"training and evaluation use those {len(classes)} classes", PartialImageNet, stacklevel=2)
        label = {w: i for i, w in enumerate(classes)}
        val = self._wnid_folders(val_dir, set(all_names))  # classes without train folders are left out below

        items: list[tuple[str, int, int]] = []

        def add(found: dict[str, list[Path]], domain: int) -> list[int]:
            start = len(items)
            items.extend((str(p), label[w], domain) for w in sorted(found) if w in label for p in found[w])
            return list(range(start, len(items)))

        train_idx = add(train, 0)
        evals = [EvalSet("imagenet", "val", "test", add(val, 0))]
        domains, absent = ["imagenet"], []
        for shift_cls in SHIFT_SETS:
            shift = shift_cls()
            if not shift.found(root):
                absent.append(f"{shift.name} ({shift.missing(root)[0]})")
                continue
            found = shift.collect(root)
            if not any(w in label for w in found):
                absent.append(f"{shift.name} (none of its classes are in {train_dir})")
                continue
            idx = add(found, len(domains))
            subset = sorted(label[w] for w in found if w in label) if shift.subset_file else None
            evals.append(EvalSet(shift.name, "test", "test", idx, classes=subset))
            domains.append(shift.name)
        if absent:
            warnings.warn(f"ImageNet shift sets not evaluated, not found under {root}: {'; '.join(absent)} "
                          f"(layout: {DOCS}#imagenet)", PartialImageNet, stacklevel=2)
        index = make_index(self.path(root), domains, classes, [all_names[w] for w in classes], items)
        return index, Predefined(train=train_idx, evals=evals)


class ImageNetShift(Benchmark):
    """A test-only ImageNet shift set: <dataset folder>/<image folder>/<class folder>/<image>."""

    family: ClassVar[str] = "ImageNet"
    test_only: ClassVar[bool] = True
    image_dirs: ClassVar[tuple[str, ...]]  # accepted image folders inside the dataset folder
    subset_file: ClassVar[Optional[str]] = None  # the 200-class subset (A, R)
    folder_kind: ClassVar[str] = "<wnid>"
    class_source: ClassVar[str] = CLASS_SOURCE
    num_classes: ClassVar[int] = 1000

    @property
    def domains(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.name,)

    @property
    def layout(self) -> str:  # type: ignore[override]
        return f"{self.folders[0]}/{self.image_dirs[0]}/{self.folder_kind}/<image>"

    @property
    def split_doc(self) -> str:  # type: ignore[override]
        sub = (f"scored among its {len(self.subset())} classes only (their WordNet ids ship as package data; "
               f"the folders present in your copy are used)" if self.subset_file else "scored among all 1000 classes")
        return (f"test only: every image is in the test set `{self.name}/test`, {sub}; also evaluated with "
                f"`--dataset imagenet` when found next to it. Training on it is refused.")

    @property
    def tree(self) -> str:  # type: ignore[override]
        also = f"   (or {', '.join(d + '/' for d in self.image_dirs[1:])})" if len(self.image_dirs) > 1 else ""
        kind = "label index 0..999" if self.folder_kind == "<0..999>" else "WordNet id"
        return (f"{self.folders[0]}/\n|-- {self.image_dirs[0]}/{also}\n|   |-- {self.example_folder}/   "
                f"(one folder per class, named by its {kind}, images inside)\n|   |-- ...")

    example_folder: ClassVar[str] = "n01440764"

    def subset(self) -> Optional[tuple[str, ...]]:
        return _package_list(self.subset_file) if self.subset_file else None

    def image_dir(self, root: str | Path) -> Path:
        return _first_dir(self.path(root), self.image_dirs)

    def required(self, root: str | Path) -> list[Path]:
        return [self.path(root), self.image_dir(root)]

    def wnid_of(self, folder: str, where: Path) -> str:
        """The WordNet id a class folder stands for (a DataError for a folder that is not a class)."""
        allowed = self.subset() or imagenet_wnids()
        if folder not in set(allowed):
            what = f"one of the {len(allowed)} {self.title} classes" if self.subset_file else "an ImageNet class"
            raise DataError(f"{where / folder}: '{folder}' is not {what}; {self.title} class folders are WordNet "
                            f"ids (layout: {DOCS}#{self.name})")
        return folder

    def collect(self, root: str | Path) -> dict[str, list[Path]]:
        """{WordNet id: images} of the copy under ``root``."""
        image_dir = self.image_dir(root)
        folders = class_images(image_dir, desc=f"index {self.title}")
        if not folders:
            raise DataError(f"{image_dir}: no class folders; expected {self.layout} (layout: {DOCS}#{self.name})")
        return {self.wnid_of(f, image_dir): imgs for f, imgs in folders.items()}

    def load(self, root: str | Path) -> tuple[ImageIndex, Optional[Predefined]]:
        wnids = imagenet_wnids()
        names = imagenet_class_names()
        label = {w: i for i, w in enumerate(wnids)}
        found = self.collect(root)
        items = [(str(p), label[w], 0) for w in sorted(found, key=label.get) for p in found[w]]
        classes = sorted(label[w] for w in found) if self.subset_file else None
        index = make_index(self.path(root), [self.name], wnids, [names[w] for w in wnids], items)
        return index, Predefined(train=[], evals=[EvalSet(self.name, "test", "test", list(range(len(items))),
                                                          classes=classes)])


class ImageNetV2(ImageNetShift):
    name = "imagenet-v2"
    title = "ImageNet-V2"
    folders = ("imagenetv2", "imagenet-v2")
    image_dirs = ("imagenetv2-matched-frequency-format-val",)
    url = "https://github.com/modestyachts/ImageNetV2 (matched-frequency)"
    folder_kind = "<0..999>"
    example_folder = "0"

    def wnid_of(self, folder: str, where: Path) -> str:
        wnids = imagenet_wnids()
        if not (folder.isdigit() and int(folder) < len(wnids) and str(int(folder)) == folder):
            raise DataError(f"{where / folder}: ImageNet-V2 class folders are label indices 0..999, not "
                            f"'{folder}' (layout: {DOCS}#{self.name})")
        return wnids[int(folder)]


class ImageNetSketch(ImageNetShift):
    name = "imagenet-sketch"
    title = "ImageNet-Sketch"
    folders = ("imagenet-sketch", "imagenet_sketch")
    image_dirs = ("images", "sketch")
    url = "https://github.com/HaohanWang/ImageNet-Sketch"


class ImageNetA(ImageNetShift):
    name = "imagenet-a"
    title = "ImageNet-A"
    folders = ("imagenet-adversarial",)
    image_dirs = ("imagenet-a",)
    url = "https://github.com/hendrycks/natural-adv-examples"
    subset_file = "imagenet_a_wnids.txt"
    num_classes = 200
    aliases = ("imagenet-adversarial",)
    example_folder = "n01498041"


class ImageNetR(ImageNetShift):
    name = "imagenet-r"
    title = "ImageNet-R"
    folders = ("imagenet-rendition",)
    image_dirs = ("imagenet-r",)
    url = "https://github.com/hendrycks/imagenet-r"
    subset_file = "imagenet_r_wnids.txt"
    num_classes = 200
    aliases = ("imagenet-rendition",)
    example_folder = "n01443537"


SHIFT_SETS = (ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR)


DATASETS = (ImageNet, ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR)
