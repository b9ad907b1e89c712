"""DomainBed's five datasets (paper Table 1): ROOT/<dataset folder>/<domain>/<class>/<image>.

Folder names are those DomainBed's ``scripts/download.py`` produces; domains are listed
in sorted folder order, the order the generic ``scan`` uses, so ``--dataset pacs
--root DATA`` gives exactly the splits of ``--root DATA/PACS``. Only the class names
differ where a folder name is not what a prompt should say.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from ..folder import ImageIndex, index_domain_folders, readable_name
from .base import Benchmark, Predefined

__all__ = ["DATASETS", "DOMAINBED_SCRIPT", "DomainBedDataset", "DomainNet", "OfficeHome", "PACS", "SPLIT_DOC",
           "TerraIncognita", "VLCS", "office_home_name"]

DOMAINBED_SCRIPT = "https://github.com/facebookresearch/DomainBed/blob/main/domainbed/scripts/download.py"
SPLIT_DOC = ("clipood's DomainBed protocol: leave-one-domain-out (`--holdout-domain`), each domain split per "
             "class into `in` / `out` (`--val-fraction 0.2`, `--split-seed`); `--base-to-new` halves the sorted "
             "classes.")


class DomainBedDataset(Benchmark):
    family: ClassVar[str] = "DomainBed"
    domain_split: ClassVar[bool] = True
    split_doc: ClassVar[str] = SPLIT_DOC
    class_source: ClassVar[str] = "the class folder names with `_` read as a space"
    # canonical domain name -> accepted folder names (canonical first)
    domain_folders: ClassVar[dict[str, tuple[str, ...]]] = {}

    @property
    def domains(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.domain_folders)

    @property
    def layout(self) -> str:  # type: ignore[override]
        return f"{self.folders[0]}/<domain>/<class>/<image> with domains {', '.join(self.domains)}"

    @property
    def tree(self) -> str:  # type: ignore[override]
        lines = [f"{self.folders[0]}/"]
        for i, d in enumerate(self.domains):
            if i == 0:
                lines += [f"|-- {d}/", f"|   |-- {self.example_class}/   (one folder per class, images inside)",
                          "|   |-- ..."]
            else:
                lines.append(f"|-- {d}/   (the same class folders)")
        return "\n".join(lines)

    example_class: ClassVar[str] = "<class>"

    def class_name(self, folder: str) -> str:
        return readable_name(folder)

    def domain_dir(self, root: str | Path, domain: str) -> Path:
        base = self.path(root)
        for f in self.domain_folders[domain]:
            if (base / f).is_dir():
                return base / f
        return base / self.domain_folders[domain][0]

    def required(self, root: str | Path) -> list[Path]:
        return [self.path(root)] + [self.domain_dir(root, d) for d in self.domains]

    def load(self, root: str | Path) -> tuple[ImageIndex, Optional[Predefined]]:
        dirs = [(d, self.domain_dir(root, d)) for d in self.domains]
        return index_domain_folders(self.path(root), dirs, self.class_name, self.title), None


def _same(*names: str) -> dict[str, tuple[str, ...]]:
    return {n: (n,) for n in names}


class PACS(DomainBedDataset):
    name = "pacs"
    title = "PACS"
    folders = ("PACS", "pacs", "kfold")
    url = f"https://domaingeneralization.github.io/#data (or DomainBed's {DOMAINBED_SCRIPT})"
    domain_folders = _same("art_painting", "cartoon", "photo", "sketch")
    num_classes = 7
    example_class = "dog"


class VLCS(DomainBedDataset):
    name = "vlcs"
    title = "VLCS"
    folders = ("VLCS", "vlcs")
    url = DOMAINBED_SCRIPT
    domain_folders = _same("Caltech101", "LabelMe", "SUN09", "VOC2007")
    num_classes = 5
    example_class = "bird"


def office_home_name(folder: str) -> str:
    """'Alarm_Clock' -> 'alarm clock'; all-capital words stay (TV)."""
    words = folder.replace("_", " ").split()
    return " ".join(w if (w.isupper() and len(w) > 1) else w.lower() for w in words)


class OfficeHome(DomainBedDataset):
    name = "officehome"
    title = "OfficeHome"
    folders = ("office_home", "OfficeHome", "OfficeHomeDataset_10072016")
    url = f"https://www.hemanthdv.org/officeHomeDataset.html (or DomainBed's {DOMAINBED_SCRIPT})"
    domain_folders = {"Art": ("Art",), "Clipart": ("Clipart",), "Product": ("Product",),
                      "Real World": ("Real World", "Real_World", "RealWorld")}
    num_classes = 65
    example_class = "Alarm_Clock"
    class_source = ("the class folder names, `_` read as a space and lower-cased except acronyms "
                    "(`Alarm_Clock` -> `alarm clock`, `TV` stays); the domain `Real World` may also be "
                    "a folder `Real_World`")

    def class_name(self, folder: str) -> str:
        return office_home_name(folder)


class TerraIncognita(DomainBedDataset):
    name = "terraincognita"
    title = "TerraIncognita"
    folders = ("terra_incognita", "TerraIncognita")
    url = ("https://lila.science/datasets/caltech-camera-traps (DomainBed's script selects the four "
           f"locations and ten classes: {DOMAINBED_SCRIPT})")
    domain_folders = _same("location_100", "location_38", "location_43", "location_46")
    num_classes = 10
    example_class = "bobcat"
    class_source = ("the class folder names (bird, bobcat, cat, coyote, dog, empty, opossum, rabbit, raccoon, "
                    "squirrel), as the paper's prompts use them; a class may have no images in some location")


class DomainNet(DomainBedDataset):
    name = "domainnet"
    title = "DomainNet"
    folders = ("domain_net", "DomainNet")
    url = f"http://ai.bu.edu/M3SDA/ (or DomainBed's {DOMAINBED_SCRIPT})"
    domain_folders = _same("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
    num_classes = 345
    example_class = "aircraft_carrier"
    class_source = "the class folder names with `_` read as a space (`The_Eiffel_Tower` -> `The Eiffel Tower`)"


DATASETS = (PACS, VLCS, OfficeHome, TerraIncognita, DomainNet)
