"""The emoji benchmark: a small slice built from the installed npm packages, checked for
layout, shared classes, image validity, recorded sources, captions and determinism;
plus the rules and the SVG placement on hand-made inputs (no packages needed)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipood.cli import main
from clipood.data import in_out_split, readable_name, scan
from clipood.data.emoji import DEFAULT_HOLDOUT, DOMAINS, build_emoji, catalog
from clipood.data.emoji.catalog import Emoji
from clipood.data.emoji.iconify import IconSet
from clipood.data.emoji.render import Pose, render
from clipood.data.emoji.sources import ENV_VAR, METADATA_PACKAGE, repository_sources
from clipood.errors import DataError

SIZE, PER_CLASS = 48, 5
SLICE = ["dog", "bicycle", "pineapple", "padlock"]  # a merged class (dog face + dog), and others


def _node_modules() -> Path:
    folder = Path(os.environ.get(ENV_VAR) or repository_sources())
    nm = folder / "node_modules" if (folder / "node_modules").is_dir() else folder
    if not (nm / "@iconify-json").is_dir():
        pytest.skip(f"emoji source packages are not installed ({nm} has no @iconify-json/): "
                    f"run `npm ci --prefix data-sources` (or `make install`) to test the emoji build")
    return nm


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The slice built through the CLI, with its pretraining set."""
    nm = _node_modules()
    out = tmp_path_factory.mktemp("emoji") / "emoji"
    rc = main(["data", "build", "emoji", "--out", str(out), "--sources", str(nm), "--size", str(SIZE),
               "--classes", ",".join(SLICE), "--pretrain-set", "--no-progress"])
    assert rc == 0
    return out, nm


def _pngs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def test_domains_and_shared_classes(built):
    root, _ = built
    index = scan(root)
    assert len(index.domains) >= 4
    assert index.domains == sorted(d.name for d in DOMAINS)
    assert DEFAULT_HOLDOUT in index.domains
    assert sorted(index.class_names) == sorted(SLICE)
    for d in index.domains:  # every class in every domain, each with images
        assert sorted(p.name for p in (root / d).iterdir()) == sorted(index.class_folders)
    manifest = json.loads((root / "manifest.json").read_text())
    assert [c["folder"] for c in manifest["classes"]] == index.class_folders
    assert [readable_name(c["folder"]) for c in manifest["classes"]] == [c["name"] for c in manifest["classes"]]
    dog = next(c for c in manifest["classes"] if c["name"] == "dog")
    assert {e["label"] for e in dog["emoji"]} == {"dog face", "dog"}


def test_images_are_valid_rgb_and_drawn(built):
    root, _ = built
    files = _pngs(root)
    assert len(files) == len(SLICE) * len(DOMAINS) * PER_CLASS
    for f in files:
        with Image.open(f) as img:
            assert img.mode == "RGB" and img.size == (SIZE, SIZE), f
            a = np.asarray(img, dtype=np.int16)
        background = a[0, 0]
        drawn = np.abs(a - background).sum(axis=2) > 60
        assert 0.03 < drawn.mean() < 0.97, f"{f}: {drawn.mean():.3f} of the pixels differ from the background"


def test_domains_draw_differently(built):
    """The plain dog of each domain differs from every other domain's (different designers)."""
    root, _ = built
    plain = {d.name: np.asarray(Image.open(root / d.name / "dog" / "1f436-0.png"), dtype=np.float32)
             for d in DOMAINS}
    names = sorted(plain)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(plain[a] - plain[b]).mean() > 8, (a, b)


def test_every_class_and_domain_keeps_validation_images(built):
    """With val_fraction 0.2 each (domain, class) has an 'out' image (DomainBed's in/out split)."""
    root, _ = built
    index = scan(root)
    ins, outs = in_out_split(index, 0.2, seed=0)
    groups = {(index.domain_ids[i], index.labels[i]) for i in outs}
    assert len(groups) == len(index.domains) * index.num_classes
    per_group = {}
    for i in range(len(index)):
        per_group[(index.domain_ids[i], index.labels[i])] = per_group.get((index.domain_ids[i], index.labels[i]), 0) + 1
    assert min(per_group.values()) >= PER_CLASS


def test_sources_licences_and_versions_recorded(built):
    root, nm = built
    recorded = json.loads((root / "sources.json").read_text())
    by_package = {s["package"]: s for s in recorded["sources"]}
    assert set(by_package) == {d.package for d in DOMAINS} | {METADATA_PACKAGE}
    md = (root / "SOURCES.md").read_text()
    for package, s in by_package.items():
        meta = json.loads((nm / package / "package.json").read_text())
        assert s["version"] == meta["version"]
        assert s["license"] == meta["license"]
        assert package in md and s["license"] in md and s["version"] in md
    assert recorded["renderer"]["name"] == "resvg-py" and recorded["renderer"]["version"]


def test_checksums_and_captions_cover_every_image(built):
    root, _ = built
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    files = {str(p.relative_to(root)) for p in _pngs(root)}
    assert set(sums) == files
    for rel, digest in sums.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
    with open(root / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["filepath"] for r in rows} == files and len(rows) == len(files)
    for r in rows:
        assert r["filepath"].startswith(r["domain"] + "/" + r["class"] + "/")
        name = readable_name(r["class"])
        assert r["title"].split(",")[0] in (f"a {name}", f"an {name}", name)


def test_pretraining_set(built):
    root, _ = built
    pre = root.parent / (root.name + "-pretrain")
    with open(pre / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filepath", "title", "domain", "class"]
    assert {r["domain"] for r in rows} == {d.name for d in DOMAINS}
    classes = {r["class"] for r in rows}
    assert "" in classes, "the pretraining set has emoji beyond the benchmark classes"
    assert {c for c in classes if c} == {c.replace(" ", "_") for c in SLICE}
    for r in rows:
        with Image.open(pre / r["filepath"]) as img:
            assert img.mode == "RGB" and img.size == (SIZE, SIZE)
        assert r["title"]
    assert not list(pre.glob("*/*/*.png")), "pretraining images sit directly in their domain folder"


def test_build_is_deterministic(built, tmp_path):
    root, nm = built
    again = tmp_path / "emoji"
    stale = tmp_path / ".emoji.partial-999999999"  # left by a killed build (no such process)
    (stale / "noto").mkdir(parents=True)
    build_emoji(again, sources=nm, size=SIZE, classes=SLICE, pretrain=True, progress=False)
    assert not stale.exists()
    for a_root, b_root in ((root, again), (root.parent / "emoji-pretrain", tmp_path / "emoji-pretrain")):
        a = {str(p.relative_to(a_root)): p.read_bytes() for p in a_root.rglob("*") if p.is_file()}
        b = {str(p.relative_to(b_root)): p.read_bytes() for p in b_root.rglob("*") if p.is_file()}
        assert a.keys() == b.keys()
        assert [k for k in a if a[k] != b[k]] == []


def test_rebuild_is_skipped_and_foreign_folder_kept(built, tmp_path):
    root, nm = built
    report = build_emoji(root, sources=nm, size=SIZE, classes=SLICE, pretrain=True, progress=False)
    assert report.skipped and report.images == len(SLICE) * len(DOMAINS) * PER_CLASS
    foreign = tmp_path / "mine"
    (foreign / "keep").mkdir(parents=True)
    with pytest.raises(DataError, match="not built by clipood"):
        build_emoji(foreign, sources=nm, size=SIZE, classes=["dog"], progress=False)
    assert (foreign / "keep").is_dir()


def test_a_rebuild_with_other_options_says_so(built, tmp_path, capsys):
    """Another designer set into the same folder replaces it (the demo did that to its own data once): one note
    naming the folder and the option that changed, never a silent replacement."""
    _, nm = built
    out = tmp_path / "emoji"
    build_emoji(out, sources=nm, size=SIZE, classes=["dog"], domains=["noto", "twemoji"], progress=False)
    assert capsys.readouterr().err == ""
    build_emoji(out, sources=nm, size=SIZE, classes=["dog"], domains=["noto", "twemoji"], progress=False)
    assert capsys.readouterr().err == ""  # the same options: skipped, nothing to say
    report = build_emoji(out, sources=nm, size=SIZE, classes=["dog"], domains=["noto"], progress=False)
    assert report.domains == ["noto"]
    err = capsys.readouterr().err.strip()
    assert err == (f"clipood: note: {out}: built before with other options (parameters.domains: ['noto', 'twemoji'] "
                   f"then, ['noto'] now); rebuilding it"), err


def test_unknown_or_partial_class_is_named(built, tmp_path):
    _, nm = built
    with pytest.raises(DataError, match="no emoji class 'unicorn horn'"):
        build_emoji(tmp_path / "x", sources=nm, classes=["unicorn horn"], progress=False)


def test_missing_sources_name_the_package_and_the_command(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        build_emoji(tmp_path / "out", sources=empty, progress=False)
    msg = str(e.value)
    assert "@iconify-json/twemoji" in msg and METADATA_PACKAGE in msg and "npm ci --prefix data-sources" in msg
    assert "\n" not in msg
    rc = main(["data", "build", "emoji", "--sources", str(empty), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("clipood: error: emoji sources:") and "@iconify-json/noto" in err
    assert not (tmp_path / "out").exists()


# --- rules and geometry on hand-made inputs -------------------------------------------

def _emoji(label, group="animals-nature", subgroup="animal-mammal", tags=()):
    return Emoji("1F600", "x", label, group, subgroup, tuple(tags))


@pytest.mark.parametrize("label,group,subgroup,expected", [
    ("dog face", "animals-nature", "animal-mammal", "dog"),
    ("dog", "animals-nature", "animal-mammal", "dog"),
    ("red apple", "food-drink", "food-fruit", "apple"),
    ("Statue of Liberty", "travel-places", "place-building", "statue of liberty"),
    ("man’s shoe", "objects", "clothing", "dress shoe"),
    ("piñata", "activities", "game", "pinata"),
    ("sun with face", "travel-places", "sky-weather", None),
    ("one o’clock", "travel-places", "time", None),
    ("waxing gibbous moon", "travel-places", "sky-weather", None),
    ("crescent moon", "travel-places", "sky-weather", "crescent moon"),
    ("grinning face", "smileys-emotion", "face-smiling", None),
    ("thumbs up", "people-body", "hand-fingers-closed", None),
    ("flag: France", "flags", "country-flag", None),
    ("red heart", "symbols", "heart", None),
])
def test_class_rules(label, group, subgroup, expected):
    assert catalog.class_name(_emoji(label, group, subgroup)) == expected


def test_pretraining_rules_and_captions():
    assert catalog.pretrain_eligible(_emoji("grinning face", "smileys-emotion", "face-smiling"))
    assert not catalog.pretrain_eligible(_emoji("flag: France", "flags", "country-flag"))
    assert not catalog.pretrain_eligible(_emoji("keycap: 1", "symbols", "keycap"))
    assert not catalog.pretrain_eligible(_emoji("medium skin tone", "component", "skin-tone"))
    assert catalog.caption("dog", ("dog", "pet", "puppy", "Pet")) == "a dog, pet, puppy"
    assert catalog.caption("octopus", ()) == "an octopus"
    assert catalog.caption("books", ("book", "library")) == "books, book, library"
    assert catalog.caption("x", tuple(f"t{i}" for i in range(10))).count(",") == catalog.MAX_CAPTION_TAGS


def _tiny_set(tmp_path: Path) -> IconSet:
    """16x16 icons: 'half' fills the left half black; aliases flip and turn it."""
    icons = {"prefix": "t", "width": 16, "height": 16,
             "icons": {"half": {"body": '<rect x="0" y="0" width="8" height="16" fill="#000"/>'},
                       "outside": {"body": '<rect x="-16" y="0" width="16" height="16" fill="#000"/>'}},
             "aliases": {"flipped": {"parent": "half", "hFlip": True},
                         "turned": {"parent": "half", "rotate": 1},
                         "unflipped": {"parent": "flipped", "hFlip": True}}}
    (tmp_path / "icons.json").write_text(json.dumps(icons))
    (tmp_path / "chars.json").write_text(json.dumps({"1f600": "half", "1f601": "missing"}))
    return IconSet(tmp_path)


def _dark(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L")) < 128


def test_icon_placement_flips_turns_and_clips(tmp_path):
    s = _tiny_set(tmp_path)
    full = Pose(scale=1.0)
    left = _dark(render(s.icon("half"), 32, full))
    assert left[:, :14].all() and not left[:, 18:].any()
    right = _dark(render(s.icon("flipped"), 32, full))
    assert right[:, 18:].all() and not right[:, :14].any()
    assert np.array_equal(_dark(render(s.icon("unflipped"), 32, full)), left)
    top = _dark(render(s.icon("turned"), 32, full))  # a quarter turn clockwise: left half -> top half
    assert top[:14, :].all() and not top[18:, :].any()
    assert not _dark(render(s.icon("outside"), 32, full)).any(), "art outside the icon box is clipped"
    small = _dark(render(s.icon("half"), 32, Pose(scale=0.5)))
    assert small.sum() == pytest.approx(8 * 16, rel=0.15) and not small[:7].any()
    assert s.by_codepoints("1F600-FE0F") == "half" and s.by_codepoints("1F601") is None
