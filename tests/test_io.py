"""Atomic writes onto what a user may name as a target: a new file, a link, a FIFO, a full device."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from clipood.io import DiskFull, atomic_path, write_text


def test_a_new_file_replaces_the_old_and_leaves_no_debris(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_link_to_a_file_stays_a_link(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()), daemon=True)
    reader.start()
    write_text(fifo, "row 1\nrow 2\n")
    reader.join(timeout=30)
    assert got == [b"row 1\nrow 2\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_full_disk_under_a_fifo_is_one_diskfull_line(tmp_path, monkeypatch):
    """(/dev/full itself is not used: a regression would replace the device, as root.)"""
    import errno
    import shutil
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    threading.Thread(target=lambda: Path(fifo).read_bytes(), daemon=True).start()

    def full(src, dst, *a):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(DiskFull, match="out: the disk is full"):
        with atomic_path(fifo) as tmp:
            tmp.write_text("x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
