"""The artwork sources: which npm packages make which domain, and where they are installed.

Each domain is one designer's emoji set, shipped as an Iconify JSON package (SVG bodies
in one ``icons.json``); emoji names, groups and keywords come from ``emojibase-data``
(Unicode CLDR data). The versions are pinned in ``data-sources/package-lock.json`` of the
repository and installed with ``npm ci --prefix data-sources`` (``make install`` runs it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...errors import DataError

__all__ = ["DOMAINS", "DOMAIN_BY_NAME", "Domain", "ENV_VAR", "INSTALL_HINT", "METADATA_PACKAGE", "find_sources",
           "package_info", "repository_sources"]

ENV_VAR = "CLIPOOD_EMOJI_SOURCES"
METADATA_PACKAGE = "emojibase-data"
INSTALL_HINT = ("install them with `npm ci --prefix data-sources` in the clipood repository (or `make install`; "
                "needs Node.js's npm), or point --sources / $" + ENV_VAR + " at a folder that holds them")


@dataclass(frozen=True)
class Domain:
    """One emoji set. ``match``: how its icons are tied to Unicode emoji ('codepoint' when
    the package ships a codepoint table, chars.json; 'name' when icons are named by the
    CLDR name)."""

    name: str
    package: str
    designer: str
    match: str

    @property
    def prefix(self) -> str:
        return self.package.rsplit("/", 1)[-1]


DOMAINS: tuple[Domain, ...] = (
    Domain("emojione", "@iconify-json/emojione", "EmojiOne 2 (via the EmojiTwo fork)", "name"),
    Domain("fluent", "@iconify-json/fluent-emoji-flat", "Microsoft Fluent, flat colour", "codepoint"),
    Domain("fluent-mono", "@iconify-json/fluent-emoji-high-contrast", "Microsoft Fluent, high contrast (monochrome)",
           "codepoint"),
    Domain("noto", "@iconify-json/noto", "Google Noto", "codepoint"),
    Domain("openmoji", "@iconify-json/openmoji", "OpenMoji (HfG Schwaebisch Gmuend)", "codepoint"),
    Domain("twemoji", "@iconify-json/twemoji", "Twitter Twemoji", "codepoint"),
)
DOMAIN_BY_NAME = {d.name: d for d in DOMAINS}


def repository_sources() -> Path:
    """``data-sources`` of the source checkout this module runs from (editable installs)."""
    return Path(__file__).resolve().parents[4] / "data-sources"


def _node_modules(folder: Path) -> Path:
    """Accept the npm project folder (with node_modules/) or node_modules itself."""
    return folder / "node_modules" if (folder / "node_modules").is_dir() else folder


def _missing(node_modules: Path, packages: list[str]) -> list[str]:
    return [p for p in packages if not (node_modules / p / "package.json").is_file()]


def find_sources(sources: Optional[str | Path], packages: list[str]) -> Path:
    """The node_modules folder holding ``packages``: --sources, else $CLIPOOD_EMOJI_SOURCES,
    else ./data-sources, else the repository's data-sources. Raises one DataError line that
    names the missing packages and the install command."""
    if sources is not None:
        candidates, origin = [Path(sources)], "--sources"
    elif os.environ.get(ENV_VAR):
        candidates, origin = [Path(os.environ[ENV_VAR])], f"${ENV_VAR}"
    else:
        candidates, origin = [Path.cwd() / "data-sources", repository_sources()], None
    best: Optional[tuple[Path, list[str]]] = None
    for folder in candidates:
        nm = _node_modules(folder)
        missing = _missing(nm, packages)
        if not missing:
            return nm
        if best is None or len(missing) < len(best[1]) or (not best[0].is_dir() and nm.is_dir()):
            best = (nm, missing)
    nm, missing = best
    where = f"{origin} {candidates[0]}" if origin else f"{nm}"
    raise DataError(f"emoji sources: npm package{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"not found in {where}; {INSTALL_HINT}")


def package_info(node_modules: Path, package: str) -> dict:
    """Name, version, licence and home of an installed package (from its package.json and,
    for Iconify sets, info.json)."""
    folder = node_modules / package
    meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    info = {"package": package, "version": meta["version"], "license": meta.get("license"),
            "url": f"https://www.npmjs.com/package/{package}/v/{meta['version']}"}
    if (folder / "info.json").is_file():
        iconify = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        lic = iconify.get("license", {})
        info.update({"title": iconify.get("name"), "author": iconify.get("author", {}).get("name"),
                     "author_url": iconify.get("author", {}).get("url"), "license": lic.get("spdx", info["license"]),
                     "license_url": lic.get("url")})
        if iconify.get("version"):
            info["artwork_version"] = iconify["version"]
    else:
        repo = meta.get("repository")
        url = repo.get("url") if isinstance(repo, dict) else repo
        if isinstance(url, str) and url.startswith("git@github.com:"):  # 'git@github.com:o/r.git' -> https
            url = "https://github.com/" + url[len("git@github.com:"):].removesuffix(".git")
        info.update({"title": meta.get("description"), "author": meta.get("author"), "author_url": url})
    return info
