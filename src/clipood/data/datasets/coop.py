"""The ten non-ImageNet datasets of CoOp's base-to-new protocol (paper Table 3), in CoOp's
``$DATA`` layout, read through CoOp's fixed split files.

A split file ``split_zhou_<Name>.json`` holds ``{"train": [[image path, label, class
name], ...], "val": [...], "test": [...]}``, image paths relative to the dataset's image
folder. It fixes the splits, the labels (base-to-new: the first half of the labels is
base) and the class names, which CoOp already made readable (EuroSAT 'AnnualCrop' ->
'Annual Crop Land', Caltech101 'Faces_easy' -> 'face'); '_' is read as a space, as
CoOp's prompt learner does. FGVCAircraft has no split file: its official
``images_variant_{train,val,test}.txt`` and ``variants.txt`` play that role.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar, Optional

from ...errors import DataError
from ...io import read_user_text
from ..folder import ImageIndex, make_index, readable_name
from ..splits import EvalSet
from .base import DOCS, Benchmark, Predefined

__all__ = ["COOP_DATASETS", "Caltech101", "CoOpDataset", "DATASETS", "DTD", "EuroSAT", "FGVCAircraft", "Flowers102",
           "Food101", "OxfordPets", "SPLITS", "SUN397", "StanfordCars", "UCF101", "class_table", "read_split_file"]

COOP_DATASETS = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
SPLITS = ("train", "val", "test")
Entry = tuple[str, int, str]  # image path relative to the image folder, label, class name


def read_split_file(path: Path) -> dict[str, list[Entry]]:
    """CoOp's split JSON, checked entry by entry (a DataError names the first bad one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a valid JSON split file ({e}); download it again ({COOP_DATASETS})") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(s), list) for s in SPLITS):
        raise DataError(f"{path}: a CoOp split file needs lists 'train', 'val' and 'test' of "
                        f"[image path, label, class name]; download it again ({COOP_DATASETS})")
    out: dict[str, list[Entry]] = {}
    for s in SPLITS:
        entries = []
        for i, e in enumerate(data[s]):
            ok = (isinstance(e, (list, tuple)) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[2], str)
                  and isinstance(e[1], int) and not isinstance(e[1], bool) and e[1] >= 0)
            if not ok:
                raise DataError(f"{path}: {s}[{i}] is {e!r}; expected [image path, label >= 0, class name]")
            entries.append((e[0], e[1], e[2]))
        out[s] = entries
    return out


def class_table(entries: list[Entry], source: Path) -> list[str]:
    """Class name of each label 0..C-1; every label needs one consistent, unique name."""
    by_label: dict[int, str] = {}
    for _, y, c in entries:
        if by_label.setdefault(y, c) != c:
            raise DataError(f"{source}: label {y} is named both {by_label[y]!r} and {c!r}; the split file is corrupt")
    n = max(by_label) + 1 if by_label else 0
    gaps = [y for y in range(n) if y not in by_label]
    if not by_label or gaps:
        raise DataError(f"{source}: labels must be 0..C-1 with images; missing label(s) "
                        f"{', '.join(map(str, gaps[:5])) or 'all'}")
    names = [by_label[y] for y in range(n)]
    seen: dict[str, int] = {}
    for y, c in enumerate(names):
        key = readable_name(c).lower()
        if key in seen:
            raise DataError(f"{source}: labels {seen[key]} and {y} have the same class name {c!r}")
        seen[key] = y
    return names


class CoOpDataset(Benchmark):
    """One domain; train / val / test from the split file."""

    family: ClassVar[str] = "CoOp"
    image_dir: ClassVar[str]  # image folder inside the dataset folder ('' = the dataset folder)
    split_file: ClassVar[str]
    tree_extra: ClassVar[str] = ""  # other files of the original download (not read)
    class_source: ClassVar[str] = "the class names of the split file (made readable by CoOp), `_` read as a space"
    split_doc: ClassVar[str] = (
        "CoOp's fixed split file: `train` (`--shots 16` samples CoOp's 16 per class), `val` reported as "
        "validation (kept whole, where CoOp few-shots it too), `test` as the test number; `--base-to-new`: the "
        "first half of the labels is base.")

    @property
    def domains(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.name,)

    @property
    def layout(self) -> str:  # type: ignore[override]
        images = f"{self.folders[0]}/{self.image_dir}/" if self.image_dir else f"{self.folders[0]}/"
        return f"images under {images} and the split file {self.folders[0]}/{self.split_file}"

    @property
    def tree(self) -> str:  # type: ignore[override]
        lines = [f"{self.folders[0]}/"]
        if self.image_dir:
            lines.append(f"|-- {self.image_dir}/   (images, as the split file names them)")
        if self.tree_extra:
            lines += [f"|-- {x}" for x in self.tree_extra.split("\n")]
        lines.append(f"|-- {self.split_file}")
        return "\n".join(lines)

    def images_path(self, root: str | Path) -> Path:
        return self.path(root) / self.image_dir if self.image_dir else self.path(root)

    def required(self, root: str | Path) -> list[Path]:
        return [self.path(root), self.images_path(root), self.path(root) / self.split_file]

    def read_entries(self, root: str | Path) -> tuple[dict[str, list[Entry]], Path]:
        """The split entries and the file they came from."""
        path = self.path(root) / self.split_file
        return read_split_file(path), path

    def load(self, root: str | Path) -> tuple[ImageIndex, Optional[Predefined]]:
        entries, source = self.read_entries(root)
        raw = class_table([e for s in SPLITS for e in entries[s]], source)
        images = self.images_path(root)
        items, parts = [], {}
        for s in SPLITS:
            start = len(items)
            items.extend((str(images / rel), y, 0) for rel, y, _ in entries[s])
            parts[s] = list(range(start, len(items)))
        missing = [p for p, _, _ in items if not os.path.isfile(p)]
        if missing:
            raise DataError(f"{self.title}: {len(missing)} of {len(items)} images named in {source} are missing, "
                            f"e.g. {missing[0]}; the images must be under {images} as the split file names them "
                            f"(layout: {DOCS}#{self.name})")
        index = make_index(self.path(root), [self.name], raw, [readable_name(c) for c in raw], items)
        evals = []
        if parts["val"]:
            evals.append(EvalSet(self.name, "val", "val", parts["val"]))
        evals.append(EvalSet(self.name, "test", "test", parts["test"]))
        return index, Predefined(train=parts["train"], evals=evals)


class Caltech101(CoOpDataset):
    name = "caltech101"
    title = "Caltech101"
    folders = ("caltech-101",)
    url = f"https://data.caltech.edu/records/mzrjq-6wc02 (101_ObjectCategories); split file: {COOP_DATASETS}"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    num_classes = 100


class OxfordPets(CoOpDataset):
    name = "oxfordpets"
    template = "a photo of a {}, a type of pet."
    title = "OxfordPets"
    folders = ("oxford_pets",)
    url = f"https://www.robots.ox.ac.uk/~vgg/data/pets/; split file: {COOP_DATASETS}"
    image_dir = "images"
    split_file = "split_zhou_OxfordPets.json"
    tree_extra = "annotations/"
    num_classes = 37


class StanfordCars(CoOpDataset):
    name = "stanfordcars"
    title = "StanfordCars"
    folders = ("stanford_cars",)
    url = f"https://ai.stanford.edu/~jkrause/cars/car_dataset.html; split file: {COOP_DATASETS}"
    image_dir = ""  # the split file names cars_train/... and cars_test/...
    split_file = "split_zhou_StanfordCars.json"
    tree_extra = "cars_train/   (images, as the split file names them)\ncars_test/\ndevkit/"
    num_classes = 196


class Flowers102(CoOpDataset):
    name = "flowers102"
    template = "a photo of a {}, a type of flower."
    title = "Flowers102"
    folders = ("oxford_flowers",)
    aliases = ("oxfordflowers", "oxford_flowers")
    url = f"https://www.robots.ox.ac.uk/~vgg/data/flowers/102/; split file: {COOP_DATASETS}"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    tree_extra = "imagelabels.mat\ncat_to_name.json"
    num_classes = 102


class Food101(CoOpDataset):
    name = "food101"
    template = "a photo of {}, a type of food."
    title = "Food101"
    folders = ("food-101",)
    url = f"https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/; split file: {COOP_DATASETS}"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"
    tree_extra = "meta/"
    num_classes = 101


class FGVCAircraft(CoOpDataset):
    """The official variant split files instead of a CoOp JSON (CoOp reads them the same way)."""

    name = "fgvcaircraft"
    template = "a photo of a {}, a type of aircraft."
    title = "FGVCAircraft"
    folders = ("fgvc_aircraft",)
    url = ("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b: its data/ folder, "
           "renamed fgvc_aircraft)")
    image_dir = "images"
    split_file = "variants.txt"
    num_classes = 100
    class_source = "the variant names of `variants.txt`, in its order (= the labels)"
    split_doc = ("the official `images_variant_{train,val,test}.txt` (as CoOp reads them): `train` (`--shots 16`), "
                 "`val` as validation, `test` as the test number; `--base-to-new`: the first half of `variants.txt`.")
    tree_extra = "images_variant_train.txt\nimages_variant_val.txt\nimages_variant_test.txt"

    @property
    def layout(self) -> str:  # type: ignore[override]
        return "fgvc_aircraft/images/<id>.jpg, fgvc_aircraft/variants.txt and images_variant_{train,val,test}.txt"

    def required(self, root: str | Path) -> list[Path]:
        base = self.path(root)
        return super().required(root) + [base / f"images_variant_{s}.txt" for s in SPLITS]

    def read_entries(self, root: str | Path) -> tuple[dict[str, list[Entry]], Path]:
        base = self.path(root)
        variants_file = base / "variants.txt"
        variants = [ln.strip() for ln in read_user_text(variants_file, error=DataError).splitlines() if ln.strip()]
        label = {v: i for i, v in enumerate(variants)}
        out: dict[str, list[Entry]] = {}
        for s in SPLITS:
            f = base / f"images_variant_{s}.txt"
            entries = []
            for n, line in enumerate(read_user_text(f, error=DataError).splitlines(), start=1):
                if not line.strip():
                    continue
                image_id, _, variant = line.strip().partition(" ")
                if variant not in label:
                    raise DataError(f"{f}:{n}: variant {variant!r} is not in {variants_file}")
                entries.append((f"{image_id}.jpg", label[variant], variant))
            out[s] = entries
        return out, variants_file


class SUN397(CoOpDataset):
    name = "sun397"
    title = "SUN397"
    folders = ("sun397",)
    url = f"https://vision.princeton.edu/projects/2010/SUN/; split file: {COOP_DATASETS}"
    image_dir = "SUN397"
    split_file = "split_zhou_SUN397.json"
    num_classes = 397


class DTD(CoOpDataset):
    name = "dtd"
    template = "{} texture."
    title = "DTD"
    folders = ("dtd",)
    aliases = ("describabletextures",)
    url = f"https://www.robots.ox.ac.uk/~vgg/data/dtd/; split file: {COOP_DATASETS}"
    image_dir = "images"
    split_file = "split_zhou_DescribableTextures.json"
    tree_extra = "imdb/\nlabels/"
    num_classes = 47


class EuroSAT(CoOpDataset):
    name = "eurosat"
    template = "a centered satellite photo of {}."
    title = "EuroSAT"
    folders = ("eurosat",)
    url = f"https://github.com/phelber/EuroSAT (RGB); split file: {COOP_DATASETS}"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"
    num_classes = 10


class UCF101(CoOpDataset):
    name = "ucf101"
    template = "a photo of a person doing {}."
    title = "UCF101"
    folders = ("ucf101",)
    url = ("https://www.crcv.ucf.edu/data/UCF101.php (UCF-101-midframes, the middle frame of each video, and the "
           f"split file: {COOP_DATASETS})")
    image_dir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    num_classes = 101


DATASETS = (Caltech101, OxfordPets, StanfordCars, Flowers102, Food101, FGVCAircraft, SUN397, DTD, EuroSAT, UCF101)
