"""Which emoji are benchmark classes, what each class is called, and caption text.

Emoji come from emojibase-data (Unicode CLDR short names and keywords, one entry per
emoji; skin-tone variants are nested in an entry and never used). Benchmark classes are
depictable things: animals, plants, food and drink, places, vehicles, activities and
objects (CLDR groups animals-nature, food-drink, travel-places, activities, objects),
without faces, people, hands, flags, symbols, keycaps, clock faces or moon phases.
A class name is the CLDR short name made readable ('dog face' -> 'dog'); ``classes.tsv``
renames poor prompts and merges variants of one object into one class. The pretraining
caption set is wider: every emoji except flags, keycaps, letters and skin-tone swatches.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ...errors import DataError

__all__ = ["ANIMAL_SUBGROUPS", "CLASS_GROUPS", "EXCLUDED_LABELS", "Emoji", "MAX_CAPTION_TAGS",
           "PRETRAIN_EXCLUDED_GROUPS", "PRETRAIN_EXCLUDED_SUBGROUPS", "caption", "class_name", "folder_name",
           "load_emoji", "overrides", "pretrain_eligible", "pretrain_name", "readable"]

CLASS_GROUPS = frozenset({"animals-nature", "food-drink", "travel-places", "activities", "objects"})
ANIMAL_SUBGROUPS = frozenset({"animal-mammal", "animal-bird", "animal-amphibian", "animal-reptile",
                              "animal-marine", "animal-bug"})
# Near-identical glyphs told apart by a detail (hands of a clock, a phase of the moon).
EXCLUDED_LABELS = (re.compile(r"o’clock$|-thirty$"),
                   re.compile(r"^(new|full|(waxing|waning) (crescent|gibbous)|(first|last) quarter) moon$"))
PRETRAIN_EXCLUDED_GROUPS = frozenset({"component", "flags"})
PRETRAIN_EXCLUDED_SUBGROUPS = frozenset({"keycap", "alphanum"})
MAX_CAPTION_TAGS = 6


@dataclass(frozen=True)
class Emoji:
    hexcode: str  # emojibase form, e.g. '1F436'
    char: str
    label: str  # CLDR short name
    group: str
    subgroup: str
    tags: tuple[str, ...]  # CLDR keywords

    @property
    def slug(self) -> str:
        """The Iconify name form of the CLDR name: 'man’s shoe' -> 'mans-shoe'."""
        return re.sub(r"[^a-z0-9]+", "-", _ascii(self.label).lower().replace("'", "")).strip("-")

    @property
    def file_stem(self) -> str:
        return self.hexcode.lower()


def _ascii(text: str) -> str:
    text = text.replace("’", "'").replace("“", "").replace("”", "")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def load_emoji(node_modules: Path) -> list[Emoji]:
    """All emojibase entries (in Unicode's order) that carry a group."""
    base = node_modules / "emojibase-data"
    try:
        data = json.loads((base / "en" / "data.json").read_text(encoding="utf-8"))
        meta = json.loads((base / "meta" / "groups.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{base}: cannot read emojibase-data ({e}); reinstall it with "
                        f"`npm ci --prefix data-sources`") from None
    groups, subgroups = meta["groups"], meta["subgroups"]
    out = []
    for e in sorted(data, key=lambda e: e.get("order", 0)):
        if "group" not in e or "subgroup" not in e:
            continue
        out.append(Emoji(hexcode=e["hexcode"], char=e["emoji"], label=e["label"], group=groups[str(e["group"])],
                         subgroup=subgroups[str(e["subgroup"])], tags=tuple(e.get("tags", ()))))
    return out


@lru_cache(maxsize=1)
def overrides() -> dict[str, Optional[str]]:
    """classes.tsv: CLDR label -> class name (None: not a class)."""
    out: dict[str, Optional[str]] = {}
    text = (Path(__file__).with_name("classes.tsv")).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, name = line.split("\t")
        out[label] = None if name == "-" else name
    return out


def readable(label: str) -> str:
    """Lower case, ASCII, single spaces: 'Statue of Liberty' -> 'statue of liberty'."""
    return " ".join(_ascii(label).lower().split())


def class_name(e: Emoji) -> Optional[str]:
    """The benchmark class of an emoji, or None when it is not a benchmark candidate."""
    if e.group not in CLASS_GROUPS or any(p.search(e.label) for p in EXCLUDED_LABELS):
        return None
    table = overrides()
    if e.label in table:
        return table[e.label]
    name = e.label
    if e.subgroup in ANIMAL_SUBGROUPS and name.endswith(" face"):
        name = name[: -len(" face")]  # 'dog face' -> 'dog' (merges with the full-body 'dog')
    elif re.search(r"\bface\b", name):
        return None  # 'sun with face', 'new moon face': faces, not objects
    return readable(name)


def folder_name(name: str) -> str:
    """Class folder: spaces as '_', so clipood's readable_name gives the name back."""
    return name.replace(" ", "_")


def pretrain_eligible(e: Emoji) -> bool:
    return e.group not in PRETRAIN_EXCLUDED_GROUPS and e.subgroup not in PRETRAIN_EXCLUDED_SUBGROUPS


def _article(name: str) -> str:
    """'a dog', 'an octopus', 'books', 'french fries', 'a night with stars', 'a glass of milk'."""
    head = re.split(r" (?:with|of|on|in|and|at|over|behind|without) ", name)[0]
    if re.search(r"[^su]s$", head):  # plural head noun ('bus', 'octopus', 'dress' are not)
        return name
    return ("an " if name[:1] in "aeiou" else "a ") + name


def caption(name: str, tags: tuple[str, ...]) -> str:
    """'a dog, pet, puppy': the name, then up to 6 CLDR keywords that add a word to it."""
    words = set(name.split())
    extra = []
    for t in tags:
        t = readable(t)
        if t and t != name and t not in words and t not in extra:
            extra.append(t)
    return ", ".join([_article(name), *extra[:MAX_CAPTION_TAGS]])


def pretrain_name(e: Emoji) -> str:
    """Name used in captions: the benchmark class name where there is one, else the CLDR name."""
    return class_name(e) or readable(e.label)
