"""Indexing an image folder laid out as one of ``LAYOUTS``: DomainBed's ROOT/<domain>/<class>/<image> or a
flat ImageFolder ROOT/<class>/<image> (one domain); a new layout is one entry that lists a folder's domains.

Everything that would otherwise fail half-way through a run is checked here, before
training starts: missing or empty folders, a domain lacking some class, empty class
folders, class names that collide after ``_`` -> space normalisation, names that are not
valid UTF-8. Each problem is one ``DataError`` line naming the folder and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..console import progress_bar
from ..errors import ConfigError, DataError
from ..io import read_user_text
from .digests import content_digests
from .images import is_image_file, not_a_regular_file

__all__ = ["AUTO", "ImageIndex", "LAYOUTS", "Layout", "check_classes", "check_same_data", "class_images",
           "detect_layout", "file_id", "fingerprint", "images_under", "index_domain_folders", "layout_names",
           "make_index", "read_class_names", "readable_name", "scan"]


@dataclass
class ImageIndex:
    """All images of a dataset with integer labels and domains (classes sorted by folder)."""

    root: Path
    domains: list[str]
    class_folders: list[str]
    class_names: list[str]
    paths: list[str] = field(repr=False)
    labels: list[int] = field(repr=False)
    domain_ids: list[int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_folders)

    def domain_index(self, name: str) -> int:
        if name not in self.domains:
            raise DataError(f"--holdout-domain: '{name}' is not a domain of {self.root}; "
                            f"domains: {', '.join(self.domains)}")
        return self.domains.index(name)


def fingerprint(paths: list[str], root: Optional[str | Path] = None, *, content: bool = True) -> dict:
    """What a resumed run must find again: every image's path (relative to ``root``) and its bytes (SHA-256,
    each file read once: ``digests``). ``content=False``: paths and sizes only, as older checkpoints hold."""
    import hashlib
    h = hashlib.sha256()
    base = Path(root) if root is not None else None
    digests = content_digests(paths, root) if content else None
    for i, p in enumerate(paths):
        rel = os.path.relpath(p, base) if base is not None else p
        if digests is not None:
            h.update(f"{rel}\0{digests[i]}\n".encode())  # one stat per file, the bytes read once (digests)
            continue
        try:
            size = os.stat(p).st_size
        except OSError:
            size = -1
        h.update(f"{rel}\0{size}\n".encode())
    return {"images": len(paths), "sha256": h.hexdigest(), **({"content": "sha256"} if content else {})}


def check_same_data(saved: Optional[dict], paths: list[str], root: str | Path, allow: bool) -> None:
    """Refuse to resume on other images than the run started with, unless asked to (--allow-changed-data)."""
    if saved is None:
        return
    now = fingerprint(paths, root, content="content" in saved)  # an older checkpoint: paths and sizes
    where = str(root)
    if saved == now:
        return
    change = (f"{saved['images']} images then, {now['images']} now" if saved["images"] != now["images"]
              else f"the same number of images ({now['images']}), but paths or contents differ")
    if allow:
        from ..console import note
        note(f"--resume: the images under {where} changed since the checkpoint ({change}); continuing on them "
             f"as --allow-changed-data asks")
        return
    raise DataError(f"--resume: the images under {where} changed since the checkpoint ({change}); the rest of the "
                    f"run would not be the run that started. Restore them, start a new run, or pass "
                    f"--allow-changed-data to continue on the new images")


def check_classes(folders: Sequence[str], root: str | Path) -> None:
    """A classifier tells classes apart: with fewer than two, every prediction is right and means nothing."""
    if len(folders) < 2:
        raise DataError(f"{root}: {len(folders)} class ({', '.join(folders) or 'none'}); classification needs at least "
                        f"two classes to tell apart (accuracy would be 100 % whatever the model); add class folders")


def readable_name(folder: str) -> str:
    """Class name for prompts: folder name with '_' as space (DomainBed / CoOp style)."""
    return " ".join(folder.replace("_", " ").split())


def _check_utf8(path: Path) -> None:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{os.fsencode(path)!r}: file name is not valid UTF-8; rename it "
                        f"(e.g. with 'convmv -f latin1 -t utf8')") from None


def _subdirs(path: Path) -> list[Path]:
    out = []
    for p in sorted(path.iterdir(), key=lambda p: os.fsencode(p.name)):
        if p.name.startswith("."):
            continue
        _check_utf8(p)
        if p.is_dir():
            out.append(p)
    return out


def file_id(path: str | Path) -> tuple[int, int]:
    """(device, inode): what one file or folder is, whatever the path, link, hard link or bind mount to it."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def images_under(folder: Path) -> list[Path]:
    """Image files under a folder, sorted, links followed; each file once; a folder inside itself is an error.

    Folders and files are told apart by (device, inode), not by their resolved paths: a bind mount of a
    folder that contains it (which no path resolution sees) is a loop, and a hard link counts once."""
    out, files = [], set()
    top = Path(folder).absolute()
    above = frozenset(file_id(p) for p in (top, *top.parents))  # the folder and every folder holding it
    chain = {os.fspath(folder): above}  # folder being walked -> the identities of it and every folder above it
    visited = {file_id(top)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = chain.pop(dirpath)
        keep = []
        for d in sorted(x for x in dirnames if not x.startswith(".")):
            sub = os.path.join(dirpath, d)
            ident = file_id(sub)
            if ident in here:
                link = os.path.islink(sub)
                what = f"a link to {os.path.realpath(sub)}, a folder" if link else "a mount of a folder"
                raise DataError(f"{sub}: {what} that contains it (a loop); remove the {'link' if link else 'mount'}")
            if ident not in visited:  # a folder reached twice through links is read once
                visited.add(ident)
                keep.append(d)
                chain[sub] = here | {ident}
        dirnames[:] = keep
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if f.startswith(".") or not is_image_file(p):
                continue
            _check_utf8(p)
            if not p.exists():
                raise DataError(f"{p}: a link to {os.readlink(p)}, which does not exist; fix or remove the link")
            kind = not_a_regular_file(p)
            if kind is not None:  # never opened: reading a FIFO blocks until a writer comes
                raise DataError(f"{p}: {kind}, not an image file; only regular files are images; remove it or move "
                                f"it out of {folder}")
            ident = file_id(p)
            if ident not in files:  # the same file through two paths counts once
                files.add(ident)
                out.append(p)
    return out


@dataclass(frozen=True)
class Layout:
    """How a plain folder holds its images: ``domains(root)`` lists its (domain name, folder) pairs, each folder
    holding one sub-folder per class. ``tree`` is the docs' picture of it (docs/datasets.md)."""

    name: str
    help: str
    tree: str
    domains: Callable[[Path], list[tuple[str, Path]]]


# The folder layouts by name (--layout), in the order the docs list them; 'auto' picks one (detect_layout).
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("domains", "DomainBed's: a sub-folder per domain, in each a sub-folder per class",
           "ROOT/\n|-- <domain>/\n|   |-- <class>/   (images inside)\n|   |-- ...\n"
           "|-- <domain>/   (the same class folders)",
           lambda root: [(d.name, d) for d in _subdirs(root)]),
    Layout("imagefolder", "torchvision's ImageFolder: a sub-folder per class, one domain named 'all'",
           "ROOT/\n|-- <class>/   (images inside)\n|-- ...", lambda root: [("all", root)]),
)}
AUTO = "auto"


def layout_names() -> tuple[str, ...]:
    """What --layout takes."""
    return (AUTO, *LAYOUTS)


def detect_layout(root: Path) -> str:
    """'domains' when every sub-folder of root holds only folders, else 'imagefolder'."""
    subs = _subdirs(root)
    if not subs:
        raise DataError(f"--root: {root} has no sub-folders; expected ROOT/<domain>/<class>/<image> "
                        f"or ROOT/<class>/<image>")
    for sub in subs:
        if any(is_image_file(p) for p in sub.iterdir() if p.is_file()):
            return "imagefolder"
    return "domains"


def read_class_names(path: Path, folders: list[str]) -> list[str]:
    """Override file: 'folder<TAB>name' lines, or one name per line in folder order."""
    lines = [ln.rstrip("\n") for ln in read_user_text(path, "--class-names", DataError).splitlines() if ln.strip()]
    if all("\t" in ln for ln in lines):
        mapping = dict(ln.split("\t", 1) for ln in lines)
        missing = [f for f in folders if f not in mapping]
        if missing:
            raise DataError(f"--class-names: {path} has no entry for class folder(s) "
                            f"{', '.join(missing[:5])}; add 'folder<TAB>name' lines")
        return [mapping[f].strip() for f in folders]
    if len(lines) != len(folders):
        raise DataError(f"--class-names: {path} has {len(lines)} names but the dataset has "
                        f"{len(folders)} classes; give one per class in sorted folder order, or "
                        f"'folder<TAB>name' lines")
    return [ln.strip() for ln in lines]


def scan(root: str | Path, layout: str = AUTO, class_names_file: Optional[str | Path] = None) -> ImageIndex:
    """Index ``root`` laid out as ``layout`` (LAYOUTS, or 'auto'); validates consistency across domains before any
    work starts."""
    root = Path(root)
    if layout not in layout_names():
        raise ConfigError(f"--layout: {layout!r} is out of range; allowed: {', '.join(layout_names())}")
    if not root.is_dir():
        raise DataError(f"--root: folder not found: {root}")
    domain_dirs = LAYOUTS[detect_layout(root) if layout == AUTO else layout].domains(root)
    if not domain_dirs:
        raise DataError(f"--root: {root} has no domain folders")

    per_domain: dict[str, dict[str, list[Path]]] = {}
    owner: dict[tuple[int, int], Path] = {}  # an image file's (device, inode) -> where it was found
    for name, ddir in domain_dirs:
        class_dirs = _subdirs(ddir)
        if not class_dirs:
            raise DataError(f"{ddir}: no class folders; expected {ddir}/<class>/<image>")
        classes = {}
        for cdir in class_dirs:
            imgs = images_under(cdir)
            for img in imgs:
                real = file_id(img)
                if real in owner:
                    raise DataError(f"{img} and {owner[real]} are one file (through a link): an image cannot be in "
                                    f"two classes or domains; remove the link")
                owner[real] = img
            if not imgs:
                raise DataError(f"{cdir}: class folder holds no images "
                                f"(extensions: .jpg .jpeg .png .bmp .gif .webp .tif .tiff .ppm); "
                                f"add images or remove the folder")
            classes[cdir.name] = imgs
        per_domain[name] = classes

    folders = sorted({c for classes in per_domain.values() for c in classes})
    check_classes(folders, root)
    for dname, classes in per_domain.items():
        missing = [c for c in folders if c not in classes]
        if missing:
            others = [d for d in per_domain if missing[0] in per_domain[d]]
            raise DataError(f"{root / dname}: domain '{dname}' has no folder for class(es) "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (present in "
                            f"{others[0]}); every domain needs the same class folders")

    names = (read_class_names(Path(class_names_file), folders) if class_names_file
             else [readable_name(f) for f in folders])
    seen: dict[str, str] = {}
    for f, n in zip(folders, names):
        key = n.lower()
        if not n:
            raise DataError(f"class folder '{f}' gives an empty class name; rename it or use --class-names")
        if key in seen:
            raise DataError(f"class folders '{seen[key]}' and '{f}' both give the class name '{n}'; "
                            f"merge or rename them, or use --class-names")
        seen[key] = f

    label_of = {f: i for i, f in enumerate(folders)}
    paths, labels, dom = [], [], []
    domains = list(per_domain)
    for di, dname in enumerate(domains):
        for f in folders:
            for p in per_domain[dname][f]:
                paths.append(str(p))
                labels.append(label_of[f])
                dom.append(di)
    return ImageIndex(root=root, domains=domains, class_folders=folders, class_names=names,
                      paths=paths, labels=labels, domain_ids=dom)


# ------------------------------------------------------------------ named datasets' own folders
# Unlike ``scan``, a named dataset (data/datasets/) knows which sub-folders are its domains (stray
# folders are ignored) and tolerates a class with no images in some domain (DomainBed's
# TerraIncognita script creates every class folder in every location): a class only has to have
# images somewhere. Labels follow the sorted class ids, as ``scan`` does.


def make_index(root: Path, domains: Sequence[str], class_ids: Sequence[str], class_names: Sequence[str],
               items: Sequence[tuple[str, int, int]]) -> ImageIndex:
    """An index from (path, label, domain id) items, kept in the given order."""
    check_classes(class_ids, root)
    return ImageIndex(root=Path(root), domains=list(domains), class_folders=list(class_ids),
                      class_names=list(class_names), paths=[p for p, _, _ in items],
                      labels=[y for _, y, _ in items], domain_ids=[d for _, _, d in items])


def class_images(folder: Path, desc: str = "index") -> dict[str, list[Path]]:
    """{class folder name: its images} for every sub-folder of ``folder`` (a bar for big datasets)."""
    subs = _subdirs(folder)
    out = {}
    for cdir in progress_bar(subs, desc=desc, unit="class", leave=False, disable=None if len(subs) > 50 else True):
        out[cdir.name] = images_under(cdir)
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
