"""Content digests of data files, each read once: the SHA-256 of a file, kept with what stat said of it.

A resumed run must find the images it started with, byte for byte (``folder.fingerprint``). Reading
every image at each checkpoint would cost an epoch of I/O, so a file's digest is kept with its
(device, inode, size, mtime, ctime): while stat says the same, the digest stands; a file whose stat
changed in any way (rewritten, replaced, renamed onto, copied elsewhere) is read again, a digest on
doubt. A user cannot set ctime, so an edit that puts back the size and mtime is still seen. The
digests live in memory and in ``$CLIPOOD_CACHE/digests/`` (one file per dataset root), so a dataset
is read once across checkpoints, resumes and runs; what a fingerprint costs after that is one stat
per file, as it did when it held sizes only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

from ..cache import cache_root
from ..console import progress_bar
from ..io import sha256_file, write_text

__all__ = ["content_digests"]

_MEMO: dict[str, tuple[tuple, str]] = {}   # absolute path -> (stat key, SHA-256)
_LOADED: set[Path] = set()
SHOW_PROGRESS = 2000  # files to read before a progress bar is worth showing


def _key(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _cache_file(root: Optional[str | Path]) -> Path:
    where = os.path.realpath(root) if root is not None else "-"
    return cache_root() / "digests" / f"{hashlib.sha1(where.encode()).hexdigest()[:20]}.tsv"


def _load(path: Path) -> None:
    if path in _LOADED:
        return
    _LOADED.add(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return  # no cache (or a damaged one): files are read again
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 7 and len(parts[6]) == 64:
            try:
                _MEMO.setdefault(parts[0], (tuple(int(x) for x in parts[1:6]), parts[6]))
            except ValueError:
                continue


def content_digests(paths: Sequence[str], root: Optional[str | Path] = None, *,
                    progress: bool = True) -> list[str]:
    """The SHA-256 of each file ('missing' for a file that is gone), read only where stat changed."""
    cache = _cache_file(root)
    _load(cache)
    out: list[str] = []
    todo: list[tuple[int, str, tuple]] = []
    for i, p in enumerate(paths):
        where = os.path.abspath(p)
        try:
            key = _key(os.stat(where))
        except OSError:
            out.append("missing")
            continue
        hit = _MEMO.get(where)
        if hit is not None and hit[0] == key:
            out.append(hit[1])
        else:
            out.append("")
            todo.append((i, where, key))
    if not todo:
        return out
    bar = progress_bar(todo, desc="data digests (read once)", unit="file",
                       disable=not progress or len(todo) < SHOW_PROGRESS)
    for i, where, key in bar:
        try:
            digest = sha256_file(where)
        except OSError:
            out[i] = "unreadable"
            continue
        _MEMO[where] = (key, digest)
        out[i] = digest
    mine = {os.path.abspath(p) for p in paths}
    try:
        write_text(cache, "".join(f"{w}\t{chr(9).join(map(str, k))}\t{d}\n" for w, (k, d) in sorted(_MEMO.items())
                                  if w in mine))
    except OSError:
        pass  # a cache that cannot be written costs a read next time, nothing else
    return out
