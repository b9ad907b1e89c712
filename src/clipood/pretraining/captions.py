"""The image-caption table of ``clipood pretrain`` (open_clip's CSV convention).

One row per pair: an image path (relative to the table's folder, or absolute), a caption,
and optionally a domain. Rows of an ``--exclude-domain`` are dropped here, before anything
else sees them, so a benchmark's held-out domain never reaches pretraining. Every problem
is one ``DataError`` naming the table, the line and the fix, raised before training starts.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..data.images import not_a_regular_file
from ..errors import DataError

__all__ = ["CaptionTable", "drop_tags", "keep_tags", "read_caption_table", "split_validation"]


@dataclass
class CaptionTable:
    """The pairs kept for pretraining; ``paths`` is what ``data.loading.ImageDataset`` reads."""

    csv: Path
    paths: list[str] = field(repr=False)
    captions: list[str] = field(repr=False)
    domains: list[Optional[str]] = field(repr=False)
    lines: list[int] = field(repr=False)            # line of each pair in the table (header is line 1)
    excluded: dict[str, int] = field(default_factory=dict)  # rows dropped per excluded domain

    def __len__(self) -> int:
        return len(self.paths)

    def domain_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(d if d is not None else "" for d in self.domains).items()))


def read_caption_table(csv_path: str | Path, *, img_key: str = "filepath", caption_key: str = "title",
                       domain_key: str = "domain", sep: str = ",", exclude_domains: Sequence[str] = (),
                       max_tags: Optional[int] = None) -> CaptionTable:
    """Read, check and filter the table; image files must exist. ``max_tags`` shortens 'name, tag, ...' captions."""
    csv_path = Path(csv_path)
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:  # a byte-order mark is no part of the header
            reader = csv.DictReader(f, delimiter=sep)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise DataError(f"--csv: {csv_path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as "
                        f"UTF-8") from None
    except csv.Error as e:
        raise DataError(f"--csv: {csv_path} is not a valid table ({e})") from None
    sep_name = "tab" if sep == "\t" else repr(sep)
    for key, flag in ((img_key, "--csv-img-key"), (caption_key, "--csv-caption-key")):
        if key not in columns:
            raise DataError(f"--csv: {csv_path} has no column '{key}' ({flag}); its columns, split on {sep_name}, "
                            f"are: {', '.join(columns) or 'none'} (set --csv-separator or {flag})")
    has_domain = domain_key in columns
    if exclude_domains and not has_domain:
        raise DataError(f"--exclude-domain: {csv_path} has no '{domain_key}' column (--csv-domain-key) to "
                        f"exclude rows by; its columns are: {', '.join(columns)}")
    all_domains = sorted({(r.get(domain_key) or "").strip() for r in rows}) if has_domain else []
    unknown = [d for d in exclude_domains if d not in all_domains]
    if unknown:
        raise DataError(f"--exclude-domain: '{unknown[0]}' is not a domain of {csv_path}; "
                        f"domains: {', '.join(all_domains)}")
    table = CaptionTable(csv_path, [], [], [], [], {d: 0 for d in exclude_domains})
    missing: list[tuple[int, str]] = []
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"--csv: {csv_path} line {n}: expected {len(columns)} fields separated by {sep_name}; "
                            f"quote fields that contain the separator")
        domain = row[domain_key].strip() if has_domain else None
        if domain in table.excluded:
            table.excluded[domain] += 1
            continue
        rel, caption = row[img_key].strip(), " ".join(row[caption_key].split())
        if max_tags is not None:
            caption = keep_tags(caption, max_tags)
        if not rel:
            raise DataError(f"--csv: {csv_path} line {n}: empty '{img_key}'")
        if not caption:
            raise DataError(f"--csv: {csv_path} line {n}: empty caption ('{caption_key}')")
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        kind = not_a_regular_file(path)
        if kind == "missing":
            missing.append((n, str(path)))
            continue
        if kind is not None:  # never opened: a FIFO would block the loader
            raise DataError(f"--csv: {csv_path} line {n}: {path} is {kind}, not an image file")
        table.paths.append(str(path))
        table.captions.append(caption)
        table.domains.append(domain)
        table.lines.append(n)
    if missing:
        n, path = missing[0]
        raise DataError(f"--csv: {csv_path} line {n}: image not found: {path} ({len(missing)} missing in all); "
                        f"image paths are relative to the table's folder")
    if len(table) < 2:
        raise DataError(f"--csv: {csv_path} has {len(table)} usable pairs after --exclude-domain; "
                        f"contrastive pretraining needs at least 2")
    return table


def split_validation(table: CaptionTable, val_size: int) -> tuple[list[int], list[int]]:
    """(train, val) row indices: val is the ``val_size`` rows with the smallest hash of their image path.

    A hash, not a shuffle, so the held-out pairs stay the same when rows are added,
    removed or reordered, and across seeds.
    """
    if val_size == 0:
        return list(range(len(table))), []
    if val_size > len(table) - 2:
        raise DataError(f"--val-size {val_size}: {table.csv} has only {len(table)} pairs; "
                        f"lower --val-size (0 disables it)")
    base = table.csv.parent

    def key(i: int) -> bytes:
        p = Path(table.paths[i])
        rel = p.relative_to(base) if p.is_relative_to(base) else p
        return hashlib.sha1(f"{rel.as_posix()}\n{table.captions[i]}".encode()).digest()

    order = sorted(range(len(table)), key=key)
    val = sorted(order[:val_size])
    held = set(val)
    return [i for i in range(len(table)) if i not in held], val


def keep_tags(caption: str, n: int) -> str:
    """'name, tag, tag' with at most the first n tags after the name (0: the name only)."""
    name, *tags = caption.split(", ")
    return ", ".join([name, *tags[:n]])


def drop_tags(caption: str, p: float, rng: random.Random) -> str:
    """'name, tag, tag' with each part after the first kept with probability 1 - p."""
    name, *tags = caption.split(", ")
    return ", ".join([name, *[t for t in tags if rng.random() >= p]])
