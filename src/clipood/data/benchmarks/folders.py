"""Building an ``ImageIndex`` from a benchmark's known folders.

Unlike the generic ``scan``, a benchmark knows which sub-folders are its domains (stray
folders are ignored) and tolerates a class with no images in some domain (DomainBed's
TerraIncognita script creates every class folder in every location): a class only has
to have images somewhere. Labels follow the sorted class ids, as ``scan`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ...errors import DataError
from ..folder import ImageIndex, _images, _subdirs


def make_index(root: Path, domains: Sequence[str], class_ids: Sequence[str], class_names: Sequence[str],
               items: Sequence[tuple[str, int, int]]) -> ImageIndex:
    """An index from (path, label, domain id) items, kept in the given order."""
    return ImageIndex(root=Path(root), domains=list(domains), class_folders=list(class_ids),
                      class_names=list(class_names), paths=[p for p, _, _ in items],
                      labels=[y for _, y, _ in items], domain_ids=[d for _, _, d in items])


def class_images(folder: Path, desc: str = "index") -> dict[str, list[Path]]:
    """{class folder name: its images} for every sub-folder of ``folder`` (a bar for big datasets)."""
    subs = _subdirs(folder)
    out = {}
    for cdir in tqdm(subs, desc=desc, unit="class", leave=False, disable=None if len(subs) > 50 else True):
        out[cdir.name] = _images(cdir)
    return out


def index_domain_folders(root: Path, domain_dirs: Sequence[tuple[str, Path]],
                         class_name: Callable[[str], str], title: str) -> ImageIndex:
    """DomainBed layout DOMAIN_DIR/<class>/<image> for each named domain folder."""
    per_domain: dict[str, dict[str, list[Path]]] = {}
    for name, ddir in domain_dirs:
        classes = class_images(ddir, desc=f"index {title}/{name}")
        if not classes:
            raise DataError(f"{ddir}: no class folders; {title} expects {ddir}/<class>/<image>")
        per_domain[name] = classes
    folders = sorted({c for classes in per_domain.values() for c in classes})
    for f in folders:
        if not any(classes.get(f) for classes in per_domain.values()):
            raise DataError(f"{title}: class '{f}' has no images in any domain (looked in "
                            f"{domain_dirs[0][1] / f} and the other domains); the copy is incomplete, re-extract it")
    label = {f: i for i, f in enumerate(folders)}
    items = [(str(p), label[f], d) for d, (name, _) in enumerate(domain_dirs)
             for f in folders for p in per_domain[name].get(f, [])]
    return make_index(root, [n for n, _ in domain_dirs], folders, [class_name(f) for f in folders], items)
