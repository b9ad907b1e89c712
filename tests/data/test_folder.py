"""Indexing image folders: both layouts, class names, and one clear error per problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from clipood.data.folder import readable_name, scan
from clipood.data.splits import make_splits
from clipood.errors import DataError


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)


def make_tree(root: Path, spec: dict) -> Path:
    """spec: {relative folder: number of images}; images are 0.png, 1.png, ..."""
    for folder, n in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / folder / f"{i}.png", 10 * i)
    return root


DOMAINBED = {"photo/dog": 3, "photo/golden_retriever": 2, "photo/cat": 1,
             "sketch/dog": 1, "sketch/golden_retriever": 2, "sketch/cat": 4}


def test_domainbed_layout(tmp_path):
    root = make_tree(tmp_path / "ds", DOMAINBED)
    (root / "photo" / "dog" / "notes.txt").write_text("not an image")
    (root / "photo" / "dog" / ".hidden.png").write_bytes(b"")
    idx = scan(root)
    assert idx.domains == ["photo", "sketch"]
    assert idx.class_folders == ["cat", "dog", "golden_retriever"]
    assert idx.class_names == ["cat", "dog", "golden retriever"]
    assert len(idx) == sum(DOMAINBED.values())
    for p, y, d in zip(idx.paths, idx.labels, idx.domain_ids):
        rel = Path(p).relative_to(root)
        assert rel.parts[0] == idx.domains[d] and rel.parts[1] == idx.class_folders[y]
        assert rel.suffix == ".png"
    counts = {}
    for y, d in zip(idx.labels, idx.domain_ids):
        key = f"{idx.domains[d]}/{idx.class_folders[y]}"
        counts[key] = counts.get(key, 0) + 1
    assert counts == DOMAINBED
    assert scan(root, layout="domains").paths == idx.paths


def test_flat_imagefolder_layout(tmp_path):
    root = make_tree(tmp_path / "flat", {"b_class": 2, "a_class": 3, "a_class/nested": 1})
    idx = scan(root)
    assert idx.domains == ["all"]
    assert idx.class_folders == ["a_class", "b_class"]
    assert idx.class_names == ["a class", "b class"]
    assert [idx.labels.count(0), idx.labels.count(1)] == [4, 2]  # images in sub-folders belong to the class
    assert set(idx.domain_ids) == {0}
    assert scan(root, layout="imagefolder").paths == idx.paths


def test_a_folder_is_a_dataset_like_the_named_ones(tmp_path):
    """One path: ``prepare_dataset`` without a name reads the folder as scan + make_splits did."""
    from clipood.data.datasets import dataset, prepare_dataset, prompt_template, splits_by_domain
    root = make_tree(tmp_path / "ds", {f"{d}/{c}": 5 for d in ("photo", "sketch") for c in ("cat", "dog", "owl")})
    opts = dict(holdout_domains=["sketch"], val_fraction=0.2, split_seed=3, base_to_new=True, shots=None,
                shot_seed=0, protocol="clipood")
    index, splits = prepare_dataset(None, root, **opts)
    expected = scan(root)
    assert (index.paths, index.domains) == (expected.paths, expected.domains)
    assert splits == make_splits(expected, **opts)
    assert dataset(None).domain_split and splits_by_domain(None) and prompt_template(None) == "a photo of a {}."


def test_the_layout_registry(tmp_path, monkeypatch):
    """--layout: 'auto' or a registered layout (any other is one error line); a new layout is one entry."""
    from clipood.data import folder
    from clipood.errors import ConfigError
    root = make_tree(tmp_path / "ds", {"2021/photo/cat": 1, "2021/photo/dog": 1, "2022/photo/cat": 1,
                                       "2022/photo/dog": 2})
    with pytest.raises(ConfigError, match=r"^--layout: 'nested' is out of range; allowed: auto, domains, imagefolder$"):
        scan(root, layout="nested")
    nested = folder.Layout("nested", "a sub-folder per year, in it a sub-folder per domain", "ROOT/<year>/<domain>/...",
                           lambda r: [(f"{y.name}-{d.name}", d) for y in sorted(r.iterdir())
                                      for d in sorted(y.iterdir())])
    monkeypatch.setitem(folder.LAYOUTS, "nested", nested)
    idx = scan(root, layout="nested")
    assert idx.domains == ["2021-photo", "2022-photo"] and idx.class_folders == ["cat", "dog"] and len(idx) == 5


def test_readable_names():
    assert readable_name("golden_retriever") == "golden retriever"
    assert readable_name("__odd__name_") == "odd name"
    assert readable_name("Already Fine") == "Already Fine"


def test_class_names_file_tab_format(tmp_path):
    root = make_tree(tmp_path / "ds", DOMAINBED)
    names = tmp_path / "names.tsv"
    names.write_text("golden_retriever\tgolden retriever dog\ncat\tdomestic cat\n\ndog\tdog\n", encoding="utf-8")
    idx = scan(root, class_names_file=names)
    assert idx.class_names == ["domestic cat", "dog", "golden retriever dog"]


def test_class_names_file_one_per_line(tmp_path):
    root = make_tree(tmp_path / "ds", DOMAINBED)
    names = tmp_path / "names.txt"
    names.write_text("Cat\nDog\nGolden Retriever\n", encoding="utf-8")
    assert scan(root, class_names_file=names).class_names == ["Cat", "Dog", "Golden Retriever"]


def test_class_names_file_errors(tmp_path):
    root = make_tree(tmp_path / "ds", DOMAINBED)
    names = tmp_path / "names.txt"
    names.write_text("Cat\nDog\n")
    with pytest.raises(DataError, match=f"--class-names: {names} has 2 names but the dataset has 3 classes"):
        scan(root, class_names_file=names)
    names.write_text("cat\tcat\ndog\tdog\n")
    with pytest.raises(DataError, match=f"--class-names: {names} has no entry for class folder.*golden_retriever"):
        scan(root, class_names_file=names)
    names.write_bytes(b"\xff\xfe\xfa\n")
    with pytest.raises(DataError, match=f"--class-names: {names} is not UTF-8"):
        scan(root, class_names_file=names)
    names.write_text("cat\ncat\ndog\n")
    with pytest.raises(DataError, match="class folders 'cat' and 'dog' both give the class name 'cat'"):
        scan(root, class_names_file=names)


# ------------------------------------------------------------------ errors


def _error(root, **kw) -> str:
    with pytest.raises(DataError) as err:
        scan(root, **kw)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1
    return msg


def test_missing_root(tmp_path):
    assert _error(tmp_path / "nope") == f"--root: folder not found: {tmp_path / 'nope'}"


def test_root_without_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty") in _error(tmp_path / "empty")


def test_empty_domain(tmp_path):
    root = make_tree(tmp_path / "ds", {"photo/dog": 1, "photo/cat": 1})
    (root / "sketch").mkdir()
    msg = _error(root, layout="domains")
    assert msg.startswith(f"{root / 'sketch'}: no class folders")


def test_domain_missing_a_class(tmp_path):
    root = make_tree(tmp_path / "ds", {"photo/dog": 1, "photo/cat": 1, "sketch/dog": 2})
    msg = _error(root)
    assert msg.startswith(f"{root / 'sketch'}: domain 'sketch' has no folder for class(es) cat (present in photo)")


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "ds", {"photo/dog": 1, "photo/cat": 0, "sketch/dog": 1, "sketch/cat": 1})
    (root / "photo" / "cat" / "readme.txt").write_text("no images here")
    msg = _error(root, layout="domains")
    assert msg.startswith(f"{root / 'photo' / 'cat'}: class folder holds no images")


def test_duplicate_class_names_after_normalisation(tmp_path):
    root = make_tree(tmp_path / "ds", {"a_b": 1, "a b": 1, "c": 1})
    msg = _error(root)
    assert "class folders 'a b' and 'a_b' both give the class name 'a b'" in msg


def test_non_utf8_file_name(tmp_path):
    root = make_tree(tmp_path / "ds", {"photo/dog": 1, "photo/cat": 1})
    bad = os.path.join(os.fsencode(root / "photo" / "cat"), b"\xff.png")
    try:
        with open(bad, "wb") as f:
            Image.new("RGB", (4, 4)).save(f, format="PNG")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    msg = _error(root)
    assert repr(bad) in msg and "not valid UTF-8" in msg


def test_non_utf8_folder_name(tmp_path):
    root = make_tree(tmp_path / "ds", {"photo/dog": 1})
    bad = os.path.join(os.fsencode(root / "photo"), b"caf\xe9")
    try:
        os.mkdir(bad)
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    with open(os.path.join(bad, b"0.png"), "wb") as f:
        Image.new("RGB", (4, 4)).save(f, format="PNG")
    msg = _error(root)
    assert repr(bad) in msg and "not valid UTF-8" in msg


def test_held_out_domain_not_found(tmp_path):
    root = make_tree(tmp_path / "ds", DOMAINBED)
    idx = scan(root)
    with pytest.raises(DataError, match=f"--holdout-domain: 'art' is not a domain of {root}; domains: photo, sketch"):
        idx.domain_index("art")
    with pytest.raises(DataError, match="'art' is not a domain"):
        make_splits(idx, holdout_domains=["art"], val_fraction=0.2, split_seed=0)


# ------------------------------------------------------------------ links


def _linked_tree(tmp_path):
    root = tmp_path / "linked"
    for d in ("a", "b"):
        for c in ("ring", "star"):
            _png(root / d / c / "0.png", 10)
            _png(root / d / c / "1.png", 20)
    return root


def test_a_link_to_a_folder_containing_it_is_refused_not_walked_forever(tmp_path):
    root = _linked_tree(tmp_path)
    os.symlink(".", root / "a" / "ring" / "self")
    with pytest.raises(DataError, match=r"ring/self: a link to .*ring, a folder that contains it \(a loop\)"):
        scan(root)
    os.unlink(root / "a" / "ring" / "self")
    os.symlink("..", root / "a" / "ring" / "up")
    os.symlink("../star", root / "a" / "ring" / "other")  # with 'up', this once hung the scan
    with pytest.raises(DataError, match="a loop"):
        scan(root)


def test_links_to_files_are_followed_and_each_file_counts_once(tmp_path):
    root = _linked_tree(tmp_path)
    os.symlink("0.png", root / "a" / "ring" / "again.png")   # the same file twice in its class
    (root / "a" / "ring" / "sub").mkdir()
    os.symlink("../1.png", root / "a" / "ring" / "sub" / "1.png")
    outside = tmp_path / "elsewhere.png"
    _png(outside)
    os.symlink(outside, root / "b" / "star" / "2.png")        # a link to a file outside the root is followed
    index = scan(root)
    assert len(index) == 9
    assert sum(Path(p).parent.name == "ring" and "/a/" in p for p in index.paths) == 2


def test_one_file_in_two_classes_and_broken_links_are_errors(tmp_path):
    root = _linked_tree(tmp_path)
    os.symlink("../ring/0.png", root / "a" / "star" / "9.png")
    with pytest.raises(DataError, match="are one file .*an image cannot be in two classes"):
        scan(root)
    os.unlink(root / "a" / "star" / "9.png")
    os.symlink("gone.png", root / "a" / "star" / "9.png")
    with pytest.raises(DataError, match="9.png: a link to gone.png, which does not exist"):
        scan(root)


# ------------------------------------------------------------------ issue 23


def test_a_fifo_named_like_an_image_is_named_not_opened_case5b(tmp_path):
    root = _linked_tree(tmp_path)
    fifo = root / "b" / "ring" / "fifo.png"
    os.mkfifo(fifo)
    msg = _error(root)
    assert msg == f"{fifo}: a FIFO (named pipe), not an image file; only regular files are images; remove it or " \
                  f"move it out of {root / 'b' / 'ring'}"


def test_load_rgb_refuses_a_fifo_without_opening_it_case5b(tmp_path):
    import threading

    from clipood.data.images import UnreadableImage, load_rgb
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = {}

    def load():
        try:
            load_rgb(fifo)
        except UnreadableImage as e:
            outcome["error"] = e.reason
    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # blocked in open(): let it go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(20)
        pytest.fail("load_rgb blocked on a FIFO")
    assert outcome["error"] == "a FIFO (named pipe), not an image file"


def test_fewer_than_two_classes_is_an_error_case8(tmp_path):
    root = make_tree(tmp_path / "one", {"photo/dog": 3, "sketch/dog": 2})
    assert _error(root) == f"{root}: 1 class (dog); classification needs at least two classes to tell apart " \
                           f"(accuracy would be 100 % whatever the model); add class folders"
    flat = make_tree(tmp_path / "flat", {"dog": 3})
    assert "1 class (dog)" in _error(flat, layout="imagefolder")


@pytest.mark.parametrize("text", ["circle\nsquare\nstar\n", "circle\tround thing\nsquare\tsquare\nstar\tstar\n"])
def test_a_class_names_file_with_a_byte_order_mark_case9(tmp_path, text):
    root = make_tree(tmp_path / "ds", {"photo/circle": 1, "photo/square": 1, "photo/star": 1})
    names = tmp_path / "names.txt"
    names.write_bytes(b"\xef\xbb\xbf" + text.encode())  # what Notepad saves as 'UTF-8'
    assert scan(root, class_names_file=names).class_names[0] in ("circle", "round thing")


def test_a_hard_link_in_another_class_is_one_file_case14(tmp_path):
    root = _linked_tree(tmp_path)
    os.link(root / "a" / "ring" / "0.png", root / "a" / "star" / "7.png")  # no link a path resolves
    with pytest.raises(DataError, match="are one file .*an image cannot be in two classes"):
        scan(root)


def test_a_bind_mount_of_the_root_inside_a_class_folder_is_a_loop_case14(tmp_path):
    """The root mounted inside one of its class folders (a user namespace makes the mount unprivileged)."""
    import shlex
    import subprocess
    import sys
    root = _linked_tree(tmp_path)
    mnt = root / "b" / "ring" / "mnt"
    mnt.mkdir()
    script = tmp_path / "scan.py"
    script.write_text(f"from clipood.data.folder import scan\ntry:\n    print(len(scan({str(root)!r})))\n"
                      f"except Exception as e:\n    print(type(e).__name__, e)\n")
    shell = f"mount --bind {shlex.quote(str(root))} {shlex.quote(str(mnt))} && exec {shlex.quote(sys.executable)} " \
            f"{shlex.quote(str(script))}"
    try:
        res = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if res.returncode != 0 and not res.stdout:
        pytest.skip(f"no unprivileged bind mount here: {res.stderr.strip()[:200]}")
    assert res.stdout.strip() == f"DataError {mnt}: a mount of a folder that contains it (a loop); remove the mount", \
        res.stdout + res.stderr


@pytest.mark.parametrize("target", ["/dev/null", "/dev/zero"])
def test_a_link_to_a_device_named_like_an_image_is_named_case5b(tmp_path, target):
    """A variant: another kind of file than a FIFO (a character device, through a link)."""
    if not os.path.exists(target):
        pytest.skip(f"no {target}")
    root = _linked_tree(tmp_path)
    os.symlink(target, root / "a" / "star" / "dev.png")
    assert _error(root).startswith(f"{root / 'a' / 'star' / 'dev.png'}: a character device, not an image file")
