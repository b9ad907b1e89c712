"""Reading images of every mode as RGB, checked against an independent numpy conversion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipood.data.images import UnreadableImage, is_image_file, load_rgb

H, W = 5, 7


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha compositing over white: c * a + 255 * (1 - a), a in [0, 1]."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return color.astype(np.float64) * a + 255.0 * (1.0 - a)


def _load(img: Image.Image, path, **save) -> np.ndarray:
    img.save(path, **save)
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (W, H)
    return np.asarray(out).astype(np.float64)


def test_rgb_is_unchanged(tmp_path):
    rgb = _rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(_load(Image.fromarray(rgb, "RGB"), tmp_path / "x.png"), rgb)


def test_grayscale(tmp_path):
    gray = _rng(2).integers(0, 256, (H, W), dtype=np.uint8)
    out = _load(Image.fromarray(gray, "L"), tmp_path / "x.png")
    assert np.array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_grayscale_16_bit_is_rescaled(tmp_path):
    gray = _rng(3).integers(0, 65536, (H, W), dtype=np.uint16)
    img = Image.fromarray(gray)
    assert img.mode.startswith("I;16")
    out = _load(img, tmp_path / "x.png")
    expected = np.repeat((gray / 65535.0 * 255.0)[..., None], 3, axis=2)
    assert np.abs(out - expected).max() <= 0.5 + 1e-9


def test_cmyk(tmp_path):
    cmyk = _rng(4).integers(0, 256, (H, W, 4), dtype=np.uint8)
    out = _load(Image.fromarray(cmyk, "CMYK"), tmp_path / "x.tif")
    c = cmyk.astype(np.float64)
    expected = (255.0 - c[..., :3]) * (255.0 - c[..., 3:]) / 255.0
    assert np.abs(out - expected).max() <= 1.0


def test_la_is_composited_on_white(tmp_path):
    la = _rng(5).integers(0, 256, (H, W, 2), dtype=np.uint8)
    la[0, 0, 1], la[0, 1, 1] = 0, 255  # fully transparent, fully opaque
    out = _load(Image.fromarray(la, "LA"), tmp_path / "x.png")
    expected = _on_white(np.repeat(la[..., :1], 3, axis=2), la[..., 1])
    assert np.abs(out - expected).max() <= 1.0
    assert np.array_equal(out[0, 0], [255, 255, 255])
    assert np.array_equal(out[0, 1], [la[0, 1, 0]] * 3)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = _rng(6).integers(0, 256, (H, W, 4), dtype=np.uint8)
    rgba[1, 2, 3] = 0
    rgba[1, 2, :3] = 0  # transparent black must come out white, not black
    out = _load(Image.fromarray(rgba, "RGBA"), tmp_path / "x.png")
    assert np.abs(out - _on_white(rgba[..., :3], rgba[..., 3])).max() <= 1.0
    assert np.array_equal(out[1, 2], [255, 255, 255])


def _palette_image(seed: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    rng = _rng(seed)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    idx = rng.integers(0, 16, (H, W), dtype=np.uint8)
    idx[0, :4] = [0, 1, 2, 3]
    img = Image.fromarray(idx, "P")
    img.putpalette(palette.flatten().tolist())
    return img, palette, idx


def test_palette_without_transparency(tmp_path):
    img, palette, idx = _palette_image(7)
    assert np.array_equal(_load(img, tmp_path / "x.png"), palette[idx])


def test_palette_with_a_transparent_index(tmp_path):
    img, palette, idx = _palette_image(8)
    out = _load(img, tmp_path / "x.png", transparency=2)
    expected = palette[idx].astype(np.float64)
    expected[idx == 2] = 255.0
    assert np.array_equal(out, expected)


def test_palette_with_per_entry_alpha(tmp_path):
    img, palette, idx = _palette_image(9)
    alpha = _rng(10).integers(0, 256, 16, dtype=np.uint8)
    out = _load(img, tmp_path / "x.png", transparency=bytes(alpha.tolist()))
    assert np.abs(out - _on_white(palette[idx], alpha[idx])).max() <= 1.0


def test_gif_with_transparency(tmp_path):
    img, palette, idx = _palette_image(11)
    out = _load(img, tmp_path / "x.gif", transparency=3)
    expected = palette[idx].astype(np.float64)
    expected[idx == 3] = 255.0
    assert np.array_equal(out, expected)


# ------------------------------------------------------------------ bad files


def _png_bytes(tmp_path) -> bytes:
    p = tmp_path / "good.png"
    Image.fromarray(_rng(12).integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(p)
    return p.read_bytes()


def _jpeg_bytes(tmp_path) -> bytes:
    p = tmp_path / "good.jpg"
    Image.fromarray(_rng(13).integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(p, quality=95)
    return p.read_bytes()


@pytest.mark.parametrize("make,keep", [(_png_bytes, 0.02), (_png_bytes, 0.5), (_jpeg_bytes, 0.1), (_jpeg_bytes, 0.6)])
def test_truncated_files_raise_naming_the_file(tmp_path, make, keep):
    """Cut inside the pixel data: the file must fail, not come back partly grey."""
    data = make(tmp_path)
    bad = tmp_path / "bad.img"
    bad.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(UnreadableImage) as err:
        load_rgb(bad)
    assert err.value.path == str(bad)
    assert str(err.value).startswith(f"{bad}: cannot decode")


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"this is not an image at all")
    with pytest.raises(UnreadableImage, match=f"^{bad}: cannot decode"):
        load_rgb(bad)
    bad.write_bytes(b"")
    with pytest.raises(UnreadableImage, match=f"^{bad}: cannot decode"):
        load_rgb(bad)
    with pytest.raises(UnreadableImage, match="file not found") as err:
        load_rgb(tmp_path / "missing.png")
    assert err.value.reason == "file not found"


def test_image_extensions(tmp_path):
    assert is_image_file(tmp_path / "a.JPG") and is_image_file(tmp_path / "b.webp")
    assert not is_image_file(tmp_path / "c.txt") and not is_image_file(tmp_path / "png")
