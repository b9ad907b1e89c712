"""Content digests of data files: each file read once, read again whenever stat says it may have changed."""

from __future__ import annotations

import os

from clipood.data import digests
from clipood.data.digests import content_digests


def _counting(monkeypatch):
    reads = []
    real = digests.sha256_file

    def counted(path):
        reads.append(os.path.basename(path))
        return real(path)
    monkeypatch.setattr(digests, "sha256_file", counted)
    return reads


def test_each_file_is_read_once_and_again_on_doubt_case5c(tmp_path, monkeypatch):
    files = []
    for name, data in (("a", b"x" * 100), ("b", b"y" * 100), ("c", b"z" * 50)):
        (tmp_path / name).write_bytes(data)
        files.append(str(tmp_path / name))
    reads = _counting(monkeypatch)
    first = content_digests(files, tmp_path)
    assert sorted(reads) == ["a", "b", "c"] and len(set(first)) == 3
    reads.clear()
    assert content_digests(files, tmp_path) == first and reads == []  # stat unchanged: nothing read

    digests._MEMO.clear()
    digests._LOADED.clear()  # a new process: the cache file under $CLIPOOD_CACHE holds them
    assert content_digests(files, tmp_path) == first and reads == []

    os.rename(files[0], str(tmp_path / "t"))  # a and b swapped: same sizes, other inodes under each name
    os.rename(files[1], files[0])
    os.rename(str(tmp_path / "t"), files[1])
    swapped = content_digests(files, tmp_path)
    assert sorted(reads) == ["a", "b"] and swapped == [first[1], first[0], first[2]]

    reads.clear()
    st = os.stat(files[2])
    with open(files[2], "r+b") as f:  # same size, and the old mtime put back: ctime still tells
        f.write(b"Z")
    os.utime(files[2], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert content_digests(files, tmp_path)[2] != first[2] and reads == ["c"]
