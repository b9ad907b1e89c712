"""Reading one image file as RGB, whatever its mode.

Palette and alpha images are composited on white (a transparent background is not
black to a human eye; ``convert('RGB')`` would make it so), CMYK and grayscale are
converted, 16/32-bit grayscale is rescaled to 8 bits, and truncated or unreadable files
raise ``UnreadableImage`` naming the file.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageFile

__all__ = ["IMAGE_EXTENSIONS", "UnreadableImage", "is_image_file", "load_rgb", "not_a_regular_file", "to_rgb"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})

# Truncated files must fail, not come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class UnreadableImage(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def not_a_regular_file(path: str | Path) -> Optional[str]:
    """None for a regular file (links followed), else what it is in words ('a FIFO (named pipe)', 'missing').

    Only regular files are read as images: opening a FIFO blocks until a writer comes, a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing" if not os.path.lexists(path) else "a link to a file that does not exist"
    except OSError as e:
        return f"not readable ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Decode an image fully (so truncation is caught here) and return it as RGB; anything but a regular
    file is refused before it is opened."""
    kind = not_a_regular_file(path)
    if kind == "missing":
        raise UnreadableImage(str(path), "file not found")
    if kind is not None:
        raise UnreadableImage(str(path), f"{kind}, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's palette-transparency notice
            with Image.open(path) as img:
                img.load()
                return to_rgb(img)
    except FileNotFoundError:
        raise UnreadableImage(str(path), "file not found") from None
    except MemoryError:
        raise
    except Exception as e:  # PIL raises many types on corrupt data (OSError, ValueError, struct.error, ...)
        raise UnreadableImage(str(path), f"cannot decode ({type(e).__name__}: {e})") from None
