"""A plain folder (no ``--dataset``): a dataset like the named benchmarks, read with a layout of
``data.folder.LAYOUTS`` (or the one it has, 'auto') and split by clipood's in/out protocol."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from ..folder import AUTO, LAYOUTS, ImageIndex, scan
from .base import Benchmark, Predefined

__all__ = ["Folder", "folders_markdown"]


class Folder(Benchmark):
    """ROOT itself, scanned (``--root`` alone): its domains and classes are its sub-folders."""

    name: ClassVar[str] = "folder"
    title: ClassVar[str] = "a folder"
    family: ClassVar[str] = "folder"
    domain_split: ClassVar[bool] = True

    def __init__(self, layout: str = AUTO):
        self.layout = layout

    def path(self, root: str | Path) -> Path:
        return Path(root)

    def check(self, root: str | Path) -> None:
        pass  # scan names what is missing or wrong, folder by folder

    def index(self, root: str | Path, class_names_file: Optional[str | Path] = None
              ) -> tuple[ImageIndex, Optional[Predefined]]:
        return scan(root, self.layout, class_names_file), None


def folders_markdown() -> list[str]:
    """docs/datasets.md's section on plain folders: each layout of the registry and its tree."""
    lines = ["", '<a id="folders"></a>', "## A folder of your own (no `--dataset`)", "",
             "`--root DIR` alone reads `DIR` as one dataset, split by clipood's protocol as the DomainBed datasets "
             "are. `--layout` says how it holds its images: `auto` (the default) picks `domains` when every "
             "sub-folder of `DIR` holds only folders, else `imagefolder`."]
    for layout in LAYOUTS.values():
        lines += ["", f"- `--layout {layout.name}`: {layout.help}.", "", "```text", layout.tree, "```"]
    return lines
