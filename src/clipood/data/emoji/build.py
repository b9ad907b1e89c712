"""Building the emoji benchmark (DomainBed layout) and its pretraining caption set.

Layout written (every file a pure function of the pinned sources and the options):

    OUT/<domain>/<class_folder>/<hexcode>-<variant>.png    the benchmark
    OUT/captions.csv      filepath,title,domain,class for every benchmark image
    OUT/manifest.json     options, sources, classes and their emoji, counts
    OUT/sources.json, OUT/SOURCES.md    package, version, licence and attribution of each source
    OUT/SHA256SUMS        a checksum per image (``sha256sum -c SHA256SUMS`` in OUT)
    OUT-pretrain/...      with ``pretrain=True``: one image of every emoji of every domain,
                          OUT-pretrain/<domain>/<hexcode>.png, and OUT-pretrain/captions.csv

Each class has at least ``images_per_class`` images per domain: the emoji of the class
(one or more after merges) in the plain pose, then re-rendered poses (render.py) in turn.
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ...console import note, progress_bar
from ...errors import DataError
from ...io import first_difference
from . import catalog
from .catalog import Emoji
from .iconify import IconSet
from .render import RENDERER, png_bytes, render, renderer_version, variant_pose
from .sources import DOMAIN_BY_NAME, DOMAINS, METADATA_PACKAGE, Domain, find_sources, package_info

__all__ = ["BuildReport", "DEFAULT_PER_CLASS", "DEFAULT_SIZE", "EmojiClass", "FORMAT", "MANIFEST", "build_emoji",
           "icon_name", "images_of", "plan_classes", "read_captions", "select", "slice_pretrain", "sources_markdown"]

FORMAT = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EmojiClass:
    name: str
    folder: str
    emoji: tuple[Emoji, ...]  # every member emoji, Unicode order
    members: dict = field(hash=False, compare=False)  # domain -> [(Emoji, icon name)] present there


@dataclass
class BuildReport:
    root: Path
    pretrain_root: Optional[Path]
    domains: list[str]
    classes: list[str]
    images: int
    pretrain_images: int
    seconds: float
    pretrain_seconds: float
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"{self.root}: already built ({len(self.domains)} domains, {len(self.classes)} classes, " \
                   f"{self.images} images); --force rebuilds it"
        s = (f"{self.root}: {len(self.domains)} domains x {len(self.classes)} classes, {self.images} images "
             f"in {self.seconds:.1f} s")
        if self.pretrain_root is not None:
            s += f"; {self.pretrain_root}: {self.pretrain_images} captioned images in {self.pretrain_seconds:.1f} s"
        return s


def icon_name(iconset: IconSet, domain: Domain, e: Emoji, slugs: frozenset = frozenset()) -> Optional[str]:
    """The icon of emoji ``e`` in a set: by codepoints (chars.json) or by CLDR name. By name,
    an alias that leads to the name of another emoji is refused: old names were reused
    (EmojiOne's 'cricket' is the cricket game, CLDR's 'cricket' the insect)."""
    if domain.match == "codepoint":
        return iconset.by_codepoints(e.hexcode)
    if e.slug in iconset.icons:
        return e.slug
    if e.slug in iconset.aliases:
        target = iconset.alias_root(e.slug)
        if target not in slugs or target == e.slug:
            return e.slug
    return None


def plan_classes(emoji: Sequence[Emoji], sets: dict[str, IconSet]) -> tuple[list[EmojiClass], dict[str, list[str]]]:
    """Classes present in every domain (sorted by folder), and the candidates left out with
    the domains that lack them."""
    slugs = frozenset(e.slug for e in emoji)
    by_name: dict[str, list[Emoji]] = {}
    for e in emoji:
        name = catalog.class_name(e)
        if name is not None:
            by_name.setdefault(name, []).append(e)
    classes, left_out = [], {}
    for name in sorted(by_name, key=catalog.folder_name):
        members = {}
        for dname, iconset in sets.items():
            found = [(e, n) for e in by_name[name] if (n := icon_name(iconset, DOMAIN_BY_NAME[dname], e, slugs))]
            members[dname] = found
        missing = [d for d, found in members.items() if not found]
        if missing:
            left_out[name] = missing
            continue
        classes.append(EmojiClass(name, catalog.folder_name(name), tuple(by_name[name]), members))
    return classes, left_out


def select(classes: list[EmojiClass], names: Optional[Sequence[str]], max_classes: Optional[int],
           left_out: Optional[dict[str, list[str]]] = None) -> list[EmojiClass]:
    """A slice for tests and quick runs: named classes, and/or ``max_classes`` spread evenly
    over the sorted list (so a small slice still mixes animals, food, vehicles, objects)."""
    if names:
        known = {c.name: c for c in classes} | {c.folder: c for c in classes}
        unknown = [n for n in names if n not in known]
        partial = [n for n in unknown if n.replace("_", " ") in (left_out or {})]
        if partial:
            n = partial[0]
            raise DataError(f"--classes: '{n}' is not drawn by every domain (missing in "
                            f"{', '.join(left_out[n.replace('_', ' ')])}), so it is not a benchmark class")
        if unknown:
            raise DataError(f"--classes: no emoji class {', '.join(map(repr, unknown))}; see the class list "
                            f"in docs/benchmark.md or a full build's manifest.json")
        classes = sorted({known[n].folder: known[n] for n in names}.values(), key=lambda c: c.folder)
    if max_classes is not None and max_classes < len(classes):
        if max_classes < 1:
            raise DataError(f"--max-classes: must be at least 1 (got {max_classes})")
        step = len(classes) / max_classes
        classes = [classes[int(i * step)] for i in range(max_classes)]
    return classes


def images_of(c: EmojiClass, domain: str, per_class: int) -> list[tuple[Emoji, str, int]]:
    """(emoji, icon name, variant) for each image of class c in a domain: every member in
    the plain pose first, then posed variants, cycling over the members."""
    found = c.members[domain]
    n = max(per_class, len(found))
    return [(*found[j % len(found)], j // len(found)) for j in range(n)]


def _write(path: Path, data: bytes) -> None:
    """Into the build's temporary folder (renamed into place when complete); a full disk names the file."""
    from ...io import DiskFull, is_disk_full
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_bytes(data)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(path) from None
        raise


def _write_text(path: Path, text: str) -> None:
    _write(path, text.encode("utf-8"))


def _csv(rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("filepath", "title", "domain", "class"))
    w.writerows(rows)
    return buf.getvalue()


def sources_markdown(sources: list[dict], renderer: dict, dataset: str) -> str:
    lines = [f"# Sources of the `{dataset}` images", "",
             "Every image is a rendering of artwork from the packages below (installed with npm from "
             "`data-sources/package-lock.json` of clipood). Images of a domain carry that domain's licence; "
             "attribute the designers when you publish them. Images derived from CC BY-SA artwork "
             "(OpenMoji) may only be shared under CC BY-SA.", "",
             "| domain | package | version | licence | artwork by |", "|---|---|---|---|---|"]
    for s in sources:
        lines.append(f"| {s.get('domain', '(names, keywords)')} | [{s['package']}]({s['url']}) | {s['version']} | "
                     f"{s['license']} | [{s.get('author') or ''}]({s.get('author_url') or ''}) |")
    lines += ["", f"Rendered with {renderer['name']} {renderer['version']}; class names and captions from Unicode "
              f"CLDR data in {METADATA_PACKAGE}. Built by `clipood data build emoji` (docs/benchmark.md).", ""]
    return "\n".join(lines)


def _existing_manifest(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fresh_tmp(root: Path) -> Path:
    """A temporary sibling of ``root`` for this process; partial folders of builds whose
    process is gone (killed) are removed."""
    for old in root.parent.glob(f".{root.name}.partial-*"):
        pid = old.name.rsplit("-", 1)[-1]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(old, ignore_errors=True)
        except PermissionError:
            pass
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _replace_dir(tmp: Path, root: Path) -> None:
    if root.exists():
        m = _existing_manifest(root)
        if m is None or m.get("builder") != __name__:
            raise DataError(f"--out: {root} exists and was not built by clipood; choose another --out or remove it")
        shutil.rmtree(root)
    os.replace(tmp, root)


def _publish(tmp: Path, dest: Path, manifest: dict, infos: list, renderer: dict, rows: list, sums: list) -> None:
    """Write a built folder's records (manifest, sources, licences, captions, checksums), then
    rename it into place: a folder without them never looks finished."""
    _write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    _write_text(tmp / "sources.json", json.dumps({"sources": infos, "renderer": renderer}, indent=1) + "\n")
    _write_text(tmp / "SOURCES.md", sources_markdown(infos, renderer, dest.name))
    _write_text(tmp / "captions.csv", _csv(rows))
    _write_text(tmp / "SHA256SUMS", "\n".join(sums) + "\n")
    _replace_dir(tmp, dest)


DEFAULT_SIZE = 128          # image side, px
DEFAULT_PER_CLASS = 5       # images per class and domain: 4 'in', 1 'out' with DomainBed's 20 % split


def build_emoji(out: str | Path, *, sources: Optional[str | Path] = None, size: int = DEFAULT_SIZE,
                images_per_class: int = DEFAULT_PER_CLASS, max_classes: Optional[int] = None,
                classes: Optional[Sequence[str]] = None, domains: Optional[Sequence[str]] = None,
                pretrain: bool = False, force: bool = False, progress: bool = True) -> BuildReport:
    """Build the benchmark into ``out`` (and ``<out>-pretrain`` with ``pretrain``); returns counts and times."""
    t0 = time.perf_counter()
    out = Path(out)
    from ..synthetic import check_build_options
    check_build_options(images_per_class, size)  # the same ranges as the shapes builder's
    unknown = [d for d in (domains or ()) if d not in DOMAIN_BY_NAME]
    if unknown:
        raise DataError(f"domains: unknown emoji domain {', '.join(unknown)}; domains: {', '.join(DOMAIN_BY_NAME)}")
    doms = [DOMAIN_BY_NAME[d] for d in sorted(set(domains))] if domains else list(DOMAINS)
    node_modules = find_sources(sources, [d.package for d in doms] + [METADATA_PACKAGE])
    infos = [{"domain": d.name, **package_info(node_modules, d.package)} for d in doms]
    infos.append(package_info(node_modules, METADATA_PACKAGE))
    renderer = {"name": RENDERER, "version": renderer_version()}
    params = {"size": size, "images_per_class": images_per_class, "max_classes": max_classes,
              "classes": sorted(classes) if classes else None, "domains": [d.name for d in doms]}
    pre_root = out.parent / f"{out.name}-pretrain"
    key = {"format": FORMAT, "parameters": params, "renderer": renderer,
           "sources": [[s["package"], s["version"]] for s in infos]}  # as it reads back from JSON

    old = _existing_manifest(out)
    for folder in (out, pre_root) if pretrain else (out,):  # before minutes of rendering, not after
        if folder.exists() and (not folder.is_dir() or _existing_manifest(folder) is None and any(folder.iterdir())):
            raise DataError(f"--out: {folder} exists and was not built by clipood; choose another --out or remove it")
    if not force and old and old.get("build_key") == key and (
            not pretrain or (_existing_manifest(pre_root) or {}).get("build_key") == key):
        return BuildReport(out, pre_root if pretrain else None, old["domains"], [c["name"] for c in old["classes"]],
                           old["counts"]["images"], 0, 0.0, 0.0, skipped=True)

    if old and old.get("build_key") != key:  # a rebuild replaces what runs may have used: said, with why
        option, then, now = first_difference(old.get("build_key") or {}, key)  # they differ: never None
        note(f"{out}: built before with other options ({option}: {then} then, {now} now); rebuilding it")
    emoji = catalog.load_emoji(node_modules)
    sets = {d.name: IconSet(node_modules / d.package) for d in doms}
    all_classes, left_out = plan_classes(emoji, sets)
    chosen = select(all_classes, classes, max_classes, left_out)
    if not chosen:
        raise DataError("emoji: no class is drawn by every selected domain; select more classes or fewer domains")

    jobs = [(d.name, c, e, n, v) for d in doms for c in chosen for e, n, v in images_of(c, d.name, images_per_class)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_tmp(out)
    plain: dict[tuple[str, str], bytes] = {}  # (domain, hexcode) -> PNG of the plain pose, reused for pretraining
    sums, rows = [], []
    counts: dict[str, dict[str, int]] = {c.name: {} for c in chosen}
    try:
        for dname, c, e, iname, v in progress_bar(jobs, desc="emoji benchmark", unit="img", disable=not progress):
            icon = sets[dname].icon(iname)
            data = png_bytes(render(icon, size, variant_pose(f"{dname}/{e.hexcode}", v)))
            rel = f"{dname}/{c.folder}/{e.file_stem}-{v}.png"
            _write(tmp / rel, data)
            if v == 0:
                plain[(dname, e.hexcode)] = data
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
            rows.append((rel, catalog.caption(c.name, e.tags), dname, c.folder))
            counts[c.name][dname] = counts[c.name].get(dname, 0) + 1
        manifest = {
            "builder": __name__, "dataset": out.name, "build_key": key,
            "domains": [d.name for d in doms],
            "domain_sources": {d.name: {"package": d.package, "designer": d.designer, "match": d.match} for d in doms},
            "default_holdout": _default_holdout(doms),
            "images": {"size": size, "per_class_and_domain": images_per_class,
                       "layout": "<domain>/<class_folder>/<hexcode>-<variant>.png",
                       "variants": "0 = the icon on white at 87.5 % of the canvas; 1.. = re-rendered at scale "
                                   "0.65-0.85, angle -20..20 deg, offset <= 6 %, white or pale background"},
            "counts": {"domains": len(doms), "classes": len(chosen), "images": len(jobs),
                       "candidates_not_in_every_domain": len(left_out)},
            "classes": [{"name": c.name, "folder": c.folder,
                         "emoji": [{"hexcode": e.hexcode, "char": e.char, "label": e.label, "subgroup": e.subgroup}
                                   for e in c.emoji],
                         "images": counts[c.name]} for c in chosen],
            "not_in_every_domain": left_out,
        }
        _publish(tmp, out, manifest, infos, renderer, rows, sums)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0

    pre_images, pre_seconds = 0, 0.0
    if pretrain:
        t1 = time.perf_counter()
        pre_images = _build_pretrain(pre_root, emoji, sets, doms, size, plain, infos, renderer, key, progress,
                                     chosen, sliced=bool(classes) or max_classes is not None)
        pre_seconds = time.perf_counter() - t1
    return BuildReport(out, pre_root if pretrain else None, [d.name for d in doms], [c.name for c in chosen],
                       len(jobs), pre_images, seconds, pre_seconds)


def _default_holdout(doms: list[Domain]) -> Optional[str]:
    from . import DEFAULT_HOLDOUT
    return DEFAULT_HOLDOUT if any(d.name == DEFAULT_HOLDOUT for d in doms) else None


def slice_pretrain(pool: list[Emoji], classes: list[EmojiClass]) -> list[Emoji]:
    """The pretraining set of a sliced build: the emoji of the chosen classes, and as many
    emoji of no benchmark class, spread over Unicode's order."""
    members = {e.hexcode for c in classes for e in c.emoji}
    others = [e for e in pool if catalog.class_name(e) is None]
    step = len(others) / max(len(classes), 1)
    picked = {others[int(i * step)].hexcode for i in range(min(len(classes), len(others)))}
    return [e for e in pool if e.hexcode in members or e.hexcode in picked]


def _build_pretrain(root: Path, emoji: list[Emoji], sets: dict[str, IconSet], doms: list[Domain], size: int,
                    plain: dict, infos: list[dict], renderer: dict, key: dict, progress: bool,
                    chosen: list[EmojiClass], sliced: bool) -> int:
    """One plain image of every pretraining-eligible emoji that each domain draws, with captions;
    a sliced build slices it too (slice_pretrain)."""
    pool = [e for e in emoji if catalog.pretrain_eligible(e)]
    if sliced:
        pool = slice_pretrain(pool, chosen)
    folder_of = {e.hexcode: c.folder for c in chosen for e in c.emoji}
    jobs = []
    slugs = frozenset(e.slug for e in emoji)
    for d in doms:
        for e in pool:
            if n := icon_name(sets[d.name], d, e, slugs):
                jobs.append((d.name, e, n))
    tmp = _fresh_tmp(root)
    rows, sums, per_domain = [], [], {}
    try:
        for dname, e, iname in progress_bar(jobs, desc="emoji pretraining set", unit="img", disable=not progress):
            data = plain.get((dname, e.hexcode))
            if data is None:
                data = png_bytes(render(sets[dname].icon(iname), size, variant_pose(f"{dname}/{e.hexcode}", 0)))
            rel = f"{dname}/{e.file_stem}.png"
            _write(tmp / rel, data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
            rows.append((rel, catalog.caption(catalog.pretrain_name(e), e.tags), dname, folder_of.get(e.hexcode, "")))
            per_domain[dname] = per_domain.get(dname, 0) + 1
        manifest = {"builder": __name__, "dataset": root.name, "build_key": key,
                    "domains": [d.name for d in doms],
                    "images": {"size": size, "layout": "<domain>/<hexcode>.png", "variants": "plain pose only"},
                    "counts": {"images": len(jobs), "per_domain": per_domain},
                    "captions": "captions.csv: filepath (relative to this folder), title (CLDR name and keywords), "
                                "domain, class (the benchmark class folder, empty when the emoji is not one)"}
        _publish(tmp, root, manifest, infos, renderer, rows, sums)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(jobs)


def read_captions(csv_path: str | Path) -> list[dict]:
    """Rows of a captions.csv with ``filepath`` made absolute (paths are stored relative to the file)."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["filepath"] = str((csv_path.parent / r["filepath"]).resolve())
    return rows
