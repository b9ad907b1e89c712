"""A small multi-domain dataset drawn on the fly: shapes (classes) in drawing styles (domains).

For tests and for a first run without downloads: real PNG files in the DomainBed
layout, deterministic for a seed. Each style is a different rendering of the same
shape, so a model trained on some styles must generalise to a held-out one.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

__all__ = ["MANIFEST", "SHAPES", "SHAPES_PER_CLASS", "SHAPES_SIZE", "STYLES", "check_build_options", "draw",
           "make_shapes_dataset"]

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
STYLES = ("photo", "sketch", "painting", "cartoon")


def _polygon(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(r * math.cos(rot + math.pi / 4 + k * math.pi / 2), r * math.sin(rot + math.pi / 4 + k * math.pi / 2))
               for k in range(4)]
    elif kind == "diamond":
        pts = [(r * 0.7 * math.cos(rot + k * math.pi / 2) * (1 if k % 2 else 1.4), r * math.sin(rot + k * math.pi / 2))
               for k in range(4)]
    elif kind == "triangle":
        pts = [(r * math.cos(rot - math.pi / 2 + k * 2 * math.pi / 3),
                r * math.sin(rot - math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)]
    elif kind == "hexagon":
        pts = [(r * math.cos(rot + k * math.pi / 3), r * math.sin(rot + k * math.pi / 3)) for k in range(6)]
    elif kind == "star":
        pts = [((r if k % 2 == 0 else r * 0.45) * math.cos(rot - math.pi / 2 + k * math.pi / 5),
                (r if k % 2 == 0 else r * 0.45) * math.sin(rot - math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    elif kind == "cross":
        a, b = r, r * 0.35
        base = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b),
                (-b, -b)]
        c, s = math.cos(rot), math.sin(rot)
        pts = [(x * c - y * s, x * s + y * c) for x, y in base]
    else:
        raise ValueError(kind)
    return [(cx + x, cy + y) for x, y in pts]


def draw(shape: str, style: str, rng: random.Random, size: int = 64) -> Image.Image:
    """One image of ``shape`` in ``style``; position, size, rotation and colours vary."""
    bg = {"photo": tuple(rng.randint(60, 200) for _ in range(3)), "sketch": (255, 255, 255),
          "painting": tuple(rng.randint(150, 255) for _ in range(3)), "cartoon": (250, 250, 210)}[style]
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    if style == "photo":  # textured background
        for _ in range(30):
            x, y = rng.randrange(size), rng.randrange(size)
            d.point((x, y), fill=tuple(min(255, c + rng.randint(-40, 40)) for c in bg))
    r = size * rng.uniform(0.25, 0.38)
    cx, cy = size / 2 + rng.uniform(-size * 0.1, size * 0.1), size / 2 + rng.uniform(-size * 0.1, size * 0.1)
    rot = rng.uniform(0, 2 * math.pi)
    color = tuple(rng.randint(0, 255) for _ in range(3))
    fill = {"photo": color, "sketch": None, "painting": color, "cartoon": color}[style]
    outline = {"photo": None, "sketch": (0, 0, 0), "painting": None, "cartoon": (0, 0, 0)}[style]
    width = {"photo": 1, "sketch": 2, "painting": 1, "cartoon": 4}[style]
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        d.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape == "ring":
        d.ellipse(box, outline=outline or color, width=max(width, int(r * 0.35)))
    else:
        d.polygon(_polygon(shape, cx, cy, r, rot), fill=fill, outline=outline, width=width)
    if style == "painting":
        img = img.filter(ImageFilter.GaussianBlur(radius=1.2))
    return img


SHAPES_PER_CLASS = 12
SHAPES_SIZE = 64
MAX_PER_CLASS = 100_000
SIZES = (16, 1024)  # image side in pixels, as for the emoji benchmark's --size
MANIFEST = "SHA256SUMS"  # the images this builder finished ('sha256sum -c SHA256SUMS' in ROOT checks them)


def _read_sums(path: Path) -> dict[str, str]:
    """{relative path: SHA-256} of a manifest; an unreadable or foreign one lists nothing (all is redrawn)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    out = {}
    for line in lines:
        digest, _, rel = line.partition("  ")
        if len(digest) == 64 and rel:
            out[rel] = digest
    return out


def check_build_options(per_class: int, size: int) -> None:
    """--per-class and --size in range, as every integer option is checked."""
    from ..errors import ConfigError
    if isinstance(per_class, bool) or not isinstance(per_class, int) or not 1 <= per_class <= MAX_PER_CLASS:
        raise ConfigError(f"--per-class: {per_class!r} is out of range; allowed: an integer from 1 to {MAX_PER_CLASS}")
    if isinstance(size, bool) or not isinstance(size, int) or not SIZES[0] <= size <= SIZES[1]:
        raise ConfigError(f"--size: {size!r} is out of range; allowed: an integer from {SIZES[0]} to {SIZES[1]}")


def make_shapes_dataset(root: str | Path, *, per_class: int = SHAPES_PER_CLASS, size: int = SHAPES_SIZE,
                        seed: int = 0, shapes=SHAPES, styles=STYLES) -> Path:
    """Write ROOT/<style>/<shape>/<n>.png; returns root.

    Each image is written under a temporary name and renamed when complete (``io.atomic_path``), and
    ROOT/SHA256SUMS lists the images finished with their digests. An image already there is kept only
    when that list has it with the same digest: one left by a build that was killed or stopped by a full
    disk is drawn again, never trusted."""
    from ..console import note
    from ..io import atomic_path, sha256_file, write_text
    check_build_options(per_class, size)
    root = Path(root)
    listed = _read_sums(root / MANIFEST)
    done: dict[str, str] = {}
    redrawn = []
    for style in styles:
        for shape in shapes:
            folder = root / style / shape
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(per_class):
                rel = f"{style}/{shape}/{n:04d}.png"
                path = root / rel
                if rel in listed and path.is_file() and not path.is_symlink() and sha256_file(path) == listed[rel]:
                    done[rel] = listed[rel]
                    continue
                if os.path.lexists(path):
                    redrawn.append(rel)
                rng = random.Random(f"{seed}/{style}/{shape}/{n}")
                with atomic_path(path) as tmp:
                    draw(shape, style, rng, size).save(tmp, format="PNG")
                done[rel] = sha256_file(path)
    kept = {rel: d for rel, d in listed.items() if rel not in done and (root / rel).is_file()}  # a larger build's
    write_text(root / MANIFEST, "".join(f"{d}  {rel}\n" for rel, d in sorted({**kept, **done}.items())))
    if redrawn:
        note(f"{root}: {len(redrawn)} image(s) there were not recorded as finished in {MANIFEST} (a build stopped "
             f"part-way, or changed since), e.g. {redrawn[0]}; drawn again")
    return root
