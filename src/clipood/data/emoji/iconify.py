"""Reading Iconify JSON icon sets and turning one icon into a standalone SVG document.

An Iconify set is one ``icons.json``: SVG bodies without the ``<svg>`` element, a
default box (``width``/``height``, ``left``/``top``), aliases that point at a parent icon
and may add a rotation or flips, and (for most emoji sets) a ``chars.json`` from Unicode
codepoints to icon names. The document placed here puts the icon at a given scale,
angle and offset on a square canvas with a solid background, so the renderer draws the
vector art directly at the target pose (no resampling of pixels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...errors import DataError

__all__ = ["Icon", "IconSet", "codepoint_key", "svg_document"]

_BOX = ("left", "top", "width", "height")


@dataclass(frozen=True)
class Icon:
    body: str
    left: float
    top: float
    width: float
    height: float
    rotate: int = 0  # quarter turns, clockwise
    hflip: bool = False
    vflip: bool = False


def codepoint_key(hexcode: str) -> str:
    """'1F43B-200D-2744-FE0F' -> '1f43b-200d-2744' (the key form of Iconify's chars.json)."""
    return "-".join(p for p in hexcode.lower().split("-") if p != "fe0f")


class IconSet:
    """One installed Iconify package (``node_modules/@iconify-json/<prefix>``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        path = folder / "icons.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read the icon set ({e}); reinstall it with "
                            f"`npm ci --prefix data-sources`") from None
        self.prefix: str = data.get("prefix", folder.name)
        self.icons: dict = data["icons"]
        self.aliases: dict = data.get("aliases", {})
        self.defaults = {"left": data.get("left", 0), "top": data.get("top", 0),
                         "width": data.get("width", 16), "height": data.get("height", 16)}
        chars_path = folder / "chars.json"
        self.chars: dict[str, str] = (json.loads(chars_path.read_text(encoding="utf-8"))
                                      if chars_path.is_file() else data.get("chars", {}))

    def __contains__(self, name: str) -> bool:
        return name in self.icons or name in self.aliases

    def by_codepoints(self, hexcode: str) -> Optional[str]:
        name = self.chars.get(codepoint_key(hexcode))
        return name if name is not None and name in self else None

    def alias_root(self, name: str) -> str:
        """The icon an alias (chain) finally points at."""
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]["parent"]
        return name

    def icon(self, name: str) -> Icon:
        """Resolve aliases (Iconify's rules: box fields override, rotations add, flips toggle)."""
        props: dict = {}
        rotate, hflip, vflip = 0, False, False
        seen = set()
        while name in self.aliases:
            if name in seen:
                raise DataError(f"{self.folder}/icons.json: alias loop at '{name}'")
            seen.add(name)
            alias = self.aliases[name]
            for k in _BOX:
                if k in alias and k not in props:
                    props[k] = alias[k]
            rotate += alias.get("rotate", 0)
            hflip ^= bool(alias.get("hFlip", False))
            vflip ^= bool(alias.get("vFlip", False))
            name = alias["parent"]
        if name not in self.icons:
            raise DataError(f"{self.folder}/icons.json: no icon '{name}'")
        icon = self.icons[name]
        box = {k: props.get(k, icon.get(k, self.defaults[k])) for k in _BOX}
        rotate += icon.get("rotate", 0)
        hflip ^= bool(icon.get("hFlip", False))
        vflip ^= bool(icon.get("vFlip", False))
        return Icon(body=icon["body"], rotate=rotate % 4, hflip=hflip, vflip=vflip, **box)


def _num(x: float) -> str:
    return f"{x:.6g}"


def svg_document(icon: Icon, size: int, *, scale: float = 1.0, angle: float = 0.0, dx: float = 0.0,
                 dy: float = 0.0, background: str = "#ffffff") -> str:
    """A size x size SVG: the icon's longer side spans ``scale * size`` pixels, centred at
    (size/2 + dx, size/2 + dy), turned by ``angle`` degrees, on a ``background`` fill. The art
    is clipped to the icon's box, as an ``<svg viewBox>`` of the icon alone would be."""
    k = scale * size / max(icon.width, icon.height)
    cx, cy = icon.left + icon.width / 2, icon.top + icon.height / 2
    own = []  # the icon's own Iconify transformations, about its centre
    if icon.rotate:
        own.append(f"rotate({90 * icon.rotate})")
    if icon.hflip or icon.vflip:
        own.append(f"scale({-1 if icon.hflip else 1} {-1 if icon.vflip else 1})")
    transform = " ".join([f"translate({_num(size / 2 + dx)} {_num(size / 2 + dy)})", f"rotate({_num(angle)})",
                          f"scale({_num(k)})", *own, f"translate({_num(-cx)} {_num(-cy)})"])
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="{size}" height="{size}" fill="{background}"/>'
            f'<g transform="{transform}"><clipPath id="clipood-icon-box"><rect x="{_num(icon.left)}" '
            f'y="{_num(icon.top)}" width="{_num(icon.width)}" height="{_num(icon.height)}"/></clipPath>'
            f'<g clip-path="url(#clipood-icon-box)">{icon.body}</g></g></svg>')
