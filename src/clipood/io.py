"""Atomic file writes: write a temporary file beside the target, fsync, rename.

A crash or pre-emption mid-write leaves the previous file intact, never a torn one; a
process killed mid-write leaves a ``.NAME.*.tmp`` file behind, which ``remove_debris``
clears when the run is next opened or finishes. Files get the permissions the user's
umask gives any new file (``tempfile.mkstemp`` alone would make them 0600). A full
disk is one ``DiskFull`` line naming the file, whatever library was writing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import ClipoodError

__all__ = ["DiskFull", "TMP_SUFFIX", "USER_ENCODING", "atomic_path", "first_difference", "is_disk_full", "read_json",
           "read_user_text", "remove_debris", "sha256_file", "umask", "write_json", "write_text"]

TMP_SUFFIX = ".tmp"


def first_difference(a: dict, b: dict, skip: frozenset = frozenset(), prefix: str = ""):
    """('outer.key', x, y) for the first key, in sorted order, where two nested records differ (keys in ``skip``
    ignored at any depth); None when they agree. Each caller says it in its own words."""
    for key in sorted(set(a) | set(b)):
        if key in skip:
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = first_difference(x, y, skip, f"{prefix}{key}.")
            if found:
                return found
        elif x != y:
            return f"{prefix}{key}", x, y
    return None
_FULL_MARKERS = ("No space left on device", "StorageFull", "file write failed", "enforce fail at inline_container",
                 "Disk quota exceeded")


class DiskFull(ClipoodError):
    """The disk filled up while writing ``path``; what was there before is untouched."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            free = f"{shutil.disk_usage(self.path.parent).free / 2**20:.0f} MB free"
        except OSError:
            free = "free space unknown"
        self.base = (f"{self.path}: the disk is full ({free} in {self.path.parent}); the file was not written "
                     f"and the previous one, if any, is intact")
        super().__init__(f"{self.base}; free some space and run again")

    def with_hint(self, hint: str) -> "DiskFull":
        """The same error, ending with what to do in this situation instead of the generic advice."""
        self.args = (f"{self.base}; {hint}",)
        return self


def umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC/EDQUOT however it surfaces: OSError, torch's RuntimeError, safetensors' SafetensorError."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(marker in str(e) for marker in _FULL_MARKERS)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    A link to a file keeps being a link (its target is replaced). A target that is no regular
    file (``/dev/stdout``, a FIFO, a device) cannot be renamed onto: it is written into, whole,
    once the temporary file is complete."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows links
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        with _into_special(path) as tmp:
            yield tmp
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())  # as open() would create it, not mkstemp's (or a library's) 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except Exception as e:
        if is_disk_full(e):
            raise DiskFull(path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def _into_special(path: Path) -> Iterator[Path]:
    fd, tmp = tempfile.mkstemp(prefix="clipood-", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except Exception as e:
        if is_disk_full(e):
            raise DiskFull(path) from None
        raise
    finally:
        os.unlink(tmp)


def remove_debris(folder: str | Path) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder`` and its sub-folders."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = []
    for p in folder.rglob(f".*{TMP_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    for d in folder.rglob(".hf-*"):  # a Hugging Face export's scratch folder (model/backbones.py)
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


USER_ENCODING = "utf-8-sig"  # UTF-8; a byte-order mark (Windows editors write one) is not part of the text


def read_user_text(path: str | Path, what: str = "", error: type = ClipoodError) -> str:
    """A text file a user wrote (class names, templates, a list of paths, a config): UTF-8 with or without a
    byte-order mark; missing, not a regular file (a FIFO would block), unreadable or not UTF-8 is one line
    naming it (``what`` is the option it came from)."""
    path = Path(path)
    label = f"{what}: " if what else ""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
            raise error(f"{label}{path}: not a regular file ({what}); give a text file")
        return path.read_text(encoding=USER_ENCODING)
    except FileNotFoundError:
        raise error(f"{label}{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise error(f"{label}{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise error(f"{label}{path}: cannot be read ({e.strerror})") from None


def read_json(path: str | Path, what: str = "") -> Any:
    """A JSON file, or one ClipoodError line naming it (missing, unreadable or not JSON)."""
    path = Path(path)
    label = f"{what}: " if what else ""
    try:
        return json.loads(path.read_text(encoding=USER_ENCODING))
    except FileNotFoundError:
        raise ClipoodError(f"{label}{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClipoodError(f"{label}{path} is not valid JSON ({e}); restore or re-create it") from None
    except OSError as e:
        raise ClipoodError(f"{label}{path}: cannot be read ({e.strerror})") from None
