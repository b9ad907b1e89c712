"""Reading one image file as RGB, whatever its mode.

Palette and alpha images are composited on white (a transparent background is not
black to a human eye; ``convert('RGB')`` would make it so), CMYK and grayscale are
converted, 16/32-bit grayscale is rescaled to 8 bits, and truncated or unreadable files
raise ``UnreadableImage`` naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

__all__ = ["IMAGE_EXTENSIONS", "UnreadableImage", "is_image_file", "load_rgb", "to_rgb"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})

# Truncated files must fail, not come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class UnreadableImage(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


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
    """Decode an image fully (so truncation is caught here) and return it as RGB."""
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
