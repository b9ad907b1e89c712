"""Property-based: random malformed configs and random corrupt image bytes are rejected cleanly."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from clipood.config import SECTIONS, Config, from_dict, iter_fields, validate
from clipood.data.images import UnreadableImage, load_rgb
from clipood.errors import ConfigError

KEYS = {sec: [f.name for s, _, f in iter_fields(Config) if s == sec] for sec in SECTIONS}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "none", "true", "all", "last:0", "last:x", "cuda:x"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2))


@st.composite
def malformed_configs(draw):
    data = {}
    for _ in range(draw(st.integers(1, 4))):
        sec = draw(st.one_of(st.sampled_from(SECTIONS), st.text(max_size=6)))
        if sec in KEYS and draw(st.booleans()):
            key = draw(st.one_of(st.sampled_from(KEYS[sec]), st.text(max_size=6)))
            data.setdefault(sec, {})
            if isinstance(data[sec], dict):
                data[sec][key] = draw(values)
        else:
            data[sec] = draw(values)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=malformed_configs())
def test_random_configs_are_valid_or_one_clear_config_error(data, tmp_path):
    base = Config()
    base.data.root = str(tmp_path)
    try:
        cfg = from_dict(data, base)
        validate(cfg)
    except ConfigError as e:
        msg = str(e)
        assert msg and "\n" not in msg
        assert msg.startswith("--") or "config" in msg or "command line" in msg, msg


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 9), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 30)).save(buf, "JPEG")
    return buf.getvalue()


@st.composite
def corrupt_images(draw):
    src = draw(st.sampled_from([_png_bytes(), _jpeg_bytes(), b""]))
    how = draw(st.sampled_from(["truncate", "flip", "random", "garbage-tail"]))
    if how == "truncate" and src:
        return src[: draw(st.integers(0, len(src) - 1))]
    if how == "flip" and src:
        b = bytearray(src)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        return bytes(b)
    if how == "garbage-tail":
        return src[:8] + draw(st.binary(max_size=200))
    return draw(st.binary(max_size=300))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=corrupt_images(), ext=st.sampled_from([".png", ".jpg"]))
def test_corrupt_image_bytes_decode_to_rgb_or_raise_unreadable(blob, ext, tmp_path):
    path = tmp_path / f"img{ext}"
    path.write_bytes(blob)
    try:
        img = load_rgb(path)
    except UnreadableImage as e:
        assert str(path) in str(e)
        return
    assert img.mode == "RGB" and img.size[0] > 0 and img.size[1] > 0


def test_validate_names_option_value_and_range():
    cfg = Config()
    cfg.data.root = "."
    cfg.averaging.beta = -2.0
    with pytest.raises(ConfigError, match=r"^--beta: -2.0 is out of range; allowed: 0 < beta <= 100"):
        validate(cfg)
