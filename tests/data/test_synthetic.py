"""The shapes dataset builder: deterministic, written atomically, and a stopped build is repaired, not trusted."""

from __future__ import annotations

import pytest
from PIL import Image

from clipood.cli import main
from clipood.data.synthetic import make_shapes_dataset

MANIFEST = "SHA256SUMS"  # the builder's record of the images it finished

SMALL = dict(per_class=2, size=32, shapes=("circle", "star"), styles=("photo", "sketch"))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_a_half_written_image_is_drawn_again_not_kept_case5(tmp_path, capsys):
    clean = _files(make_shapes_dataset(tmp_path / "clean", **SMALL))
    root = make_shapes_dataset(tmp_path / "stopped", **SMALL)
    victim = root / "sketch" / "star" / "0001.png"
    victim.write_bytes(b"")  # what a SIGKILL or a full disk left in place before the fix
    (root / MANIFEST).unlink(missing_ok=True)  # ... and the build never got to record what it finished
    make_shapes_dataset(root, **SMALL)
    assert _files(root) == clean
    Image.open(victim).load()
    assert "were not recorded as finished" in capsys.readouterr().err

    victim.write_bytes(victim.read_bytes()[:40])  # damaged after a finished build: its digest no longer matches
    make_shapes_dataset(root, **SMALL)
    assert _files(root) == clean


def test_an_image_is_written_under_a_temporary_name_and_renamed_case5(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk, a kill) leaves no file under the image's name."""
    real = Image.Image.save

    def half_then_fail(self, fp, *a, **k):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    from clipood.io import DiskFull
    with pytest.raises(DiskFull, match=r"photo/circle/0000.png: the disk is full"):
        make_shapes_dataset(tmp_path / "s", **SMALL)
    assert not list((tmp_path / "s").rglob("*.png")) and not list((tmp_path / "s").rglob("*.tmp"))
    monkeypatch.setattr(Image.Image, "save", real)
    make_shapes_dataset(tmp_path / "s", **SMALL)
    assert len(_files(tmp_path / "s")) == 8


@pytest.mark.parametrize("value", ["0", "-1", "100001"])
def test_per_class_out_of_range_is_refused_case12(tmp_path, capsys, value):
    code = main(["data", "build", "shapes", "--out", str(tmp_path / "s"), "--per-class", value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"clipood: error: --per-class: {int(value)} is out of range; allowed: an integer " \
                                 f"from 1 to 100000"
    assert not (tmp_path / "s").exists()


def test_size_applies_to_shapes_and_emoji_options_are_named_when_ignored_case12(tmp_path, capsys):
    """Variants: --size was ignored for shapes without a word, as were the emoji-only options."""
    code = main(["data", "build", "shapes", "--out", str(tmp_path / "s"), "--per-class", "1", "--size", "24",
                 "--max-classes", "3"])
    assert code == 0
    assert Image.open(tmp_path / "s" / "photo" / "circle" / "0000.png").size == (24, 24)
    assert "clipood: warning: --max-classes: applies to 'data build emoji' only" in capsys.readouterr().err
    code = main(["data", "build", "shapes", "--out", str(tmp_path / "t"), "--size", "8"])
    assert code == 2 and "--size: 8 is out of range" in capsys.readouterr().err
