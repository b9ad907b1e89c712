"""Rasterising icons with resvg (resvg-py), and the deterministic pose/background variants.

Why resvg: one self-contained wheel from PyPI (no system library), it draws every icon of
these sets, its pixels match librsvg's within a few grey levels, and it takes ~3 ms per
128 px icon here (docs/benchmark.md has the comparison with CairoSVG, pyvips, skia-python
and svglib). Variant 0 of an emoji is the plain icon on white; variants 1.. are the same
vector art re-rendered at a small random scale, angle, offset and a pale background, drawn
from a seeded generator so that a build is byte-identical every time.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

from ...errors import DataError
from .iconify import Icon, svg_document

__all__ = ["PLAIN_SCALE", "Pose", "RENDERER", "png_bytes", "render", "renderer_version", "variant_pose"]

RENDERER = "resvg-py"
PLAIN_SCALE = 0.875  # longer side of the icon in the plain image, as a fraction of the canvas


@dataclass(frozen=True)
class Pose:
    scale: float = PLAIN_SCALE
    angle: float = 0.0
    dx: float = 0.0  # fraction of the canvas
    dy: float = 0.0
    background: str = "#ffffff"


def variant_pose(key: str, variant: int) -> Pose:
    """Variant 0: the plain icon. Others: scale 0.65-0.85, angle -20..20 deg, offset up to 6 %
    of the canvas, background white or a pale colour (each channel 215-255)."""
    if variant == 0:
        return Pose()
    rng = random.Random(f"clipood-emoji/{key}/{variant}")
    scale = rng.uniform(0.65, 0.85)
    angle = rng.uniform(-20.0, 20.0)
    dx, dy = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)
    if rng.random() < 0.5:
        background = "#ffffff"
    else:
        background = "#" + "".join(f"{rng.randint(215, 255):02x}" for _ in range(3))
    return Pose(round(scale, 4), round(angle, 2), round(dx, 4), round(dy, 4), background)


def renderer_version() -> str:
    from importlib.metadata import version
    return version("resvg_py")


def render(icon: Icon, size: int, pose: Pose = Pose()) -> Image.Image:
    """The icon drawn at ``pose`` on a size x size RGB canvas."""
    try:
        import resvg_py
    except ImportError:
        raise DataError("the emoji benchmark needs the SVG renderer resvg-py: pip install 'resvg-py>=0.5' "
                        "(it is a clipood dependency; reinstall clipood)") from None
    svg = svg_document(icon, size, scale=pose.scale, angle=pose.angle, dx=pose.dx * size, dy=pose.dy * size,
                       background=pose.background)
    png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as img:
        img.load()
        if img.mode != "RGBA":
            img = img.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, img).convert("RGB")


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding with fixed settings (no timestamps or text chunks): same pixels, same bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
