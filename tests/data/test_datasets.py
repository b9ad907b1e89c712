"""Benchmark registry: every dataset loads a miniature copy of its real layout with the right
domains, readable class names, splits and class subsets; a missing one gives the documented error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipood.config import Config, validate
from clipood.data import datasets as registry
from clipood.data.datasets.imagenet import PartialImageNet
from clipood.data.folder import scan
from clipood.data.splits import EvalSet, make_splits
from clipood.errors import ConfigError, DataError
from clipood.evaluation import ClassWeights, accuracies

OPTS = dict(holdout_domains=[], val_fraction=0.5, split_seed=0)


def image(path: Path, seed: int = 0) -> None:
    """A real 8x8 image file (PNG or JPEG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    arr = torch.randint(0, 256, (8, 8, 3), generator=g, dtype=torch.uint8).numpy()
    Image.fromarray(arr).save(path)


def test_registry_has_every_benchmark_of_the_paper():
    assert registry.names() == [
        "pacs", "vlcs", "officehome", "terraincognita", "domainnet",
        "imagenet", "imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r",
        "caltech101", "oxfordpets", "stanfordcars", "flowers102", "food101", "fgvcaircraft", "sun397", "dtd",
        "eurosat", "ucf101"]
    # Lookup ignores case, '-' and '_' (DomainBed and CoOp spell names differently).
    assert registry.get("OfficeHome").name == registry.get("office_home").name == "officehome"
    assert registry.get("ImageNetV2").name == "imagenet-v2"
    assert registry.get("oxford_flowers").name == "flowers102"


# ----------------------------------------------------------------------------- DomainBed

# dataset -> (folder under root, domain folders, class folders, expected readable names)
DOMAINBED = {
    "pacs": ("PACS", ["art_painting", "cartoon", "photo", "sketch"], ["dog", "elephant", "house"],
             ["dog", "elephant", "house"]),
    "vlcs": ("VLCS", ["Caltech101", "LabelMe", "SUN09", "VOC2007"], ["bird", "car", "person"],
             ["bird", "car", "person"]),
    "officehome": ("office_home", ["Art", "Clipart", "Product", "Real World"], ["Alarm_Clock", "Desk_Lamp", "TV"],
                   ["alarm clock", "desk lamp", "TV"]),
    "terraincognita": ("terra_incognita", ["location_100", "location_38", "location_43", "location_46"],
                       ["bird", "bobcat", "empty"], ["bird", "bobcat", "empty"]),
    "domainnet": ("domain_net", ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"],
                  ["The_Eiffel_Tower", "aircraft_carrier", "zebra"], ["The Eiffel Tower", "aircraft carrier", "zebra"]),
}


def make_domainbed(root: Path, name: str, per_class: int = 2) -> Path:
    folder, domains, classes, _ = DOMAINBED[name]
    for d in domains:
        for c in classes:
            for k in range(per_class):
                image(root / folder / d / c / f"{k}.jpg", seed=k)
    (root / folder / "README.txt").write_text("not a domain")  # stray files are ignored
    return root


@pytest.mark.parametrize("name", list(DOMAINBED))
def test_domainbed_dataset_loads_its_layout(tmp_path, name):
    folder, domains, classes, readable = DOMAINBED[name]
    make_domainbed(tmp_path, name)
    (tmp_path / folder / "__MACOSX").mkdir()  # a stray folder is not a domain
    index, splits = registry.prepare_dataset(name, tmp_path, **{**OPTS, "holdout_domains": [domains[0]]})
    assert index.domains == domains
    assert index.class_folders == sorted(classes)
    assert dict(zip(index.class_folders, index.class_names)) == dict(zip(classes, readable))
    assert len(index) == len(domains) * len(classes) * 2
    # Leave-one-domain-out with a 50 % in/out split of 2 images per (domain, class).
    assert splits.train_domains == domains[1:]
    assert len(splits.train) == (len(domains) - 1) * len(classes)
    roles = {es.name: (es.role, len(es.indices)) for es in splits.evals}
    assert roles[f"{domains[0]}/in"] == ("test", len(classes))
    assert roles[f"{domains[0]}/out"] == ("oracle", len(classes))
    assert all(roles[f"{d}/out"] == ("val", len(classes)) for d in domains[1:])


def test_domainbed_protocol_is_identical_to_the_generic_folder_scan(tmp_path):
    make_domainbed(tmp_path, "pacs", per_class=5)
    opts = dict(holdout_domains=["sketch"], val_fraction=0.2, split_seed=3, base_to_new=True, shots=2, shot_seed=1)
    index, splits = registry.prepare_dataset("PACS", tmp_path, **opts)
    plain = scan(tmp_path / "PACS", "domains")
    (tmp_path / "PACS" / "README.txt").unlink()
    plain_splits = make_splits(plain, **opts)
    assert (index.paths, index.labels, index.domain_ids) == (plain.paths, plain.labels, plain.domain_ids)
    assert splits == plain_splits


def test_terraincognita_tolerates_a_class_missing_from_a_location(tmp_path):
    make_domainbed(tmp_path, "terraincognita")
    for f in (tmp_path / "terra_incognita" / "location_46" / "bobcat").iterdir():
        f.unlink()  # DomainBed's script leaves such empty class folders
    (tmp_path / "terra_incognita" / "location_43" / "bobcat").rename(tmp_path / "gone")
    index, splits = registry.prepare_dataset("terraincognita", tmp_path, **OPTS)
    assert index.class_folders == ["bird", "bobcat", "empty"]
    bobcat = [d for d, y in zip(index.domain_ids, index.labels) if y == 1]
    assert sorted(set(index.domains[d] for d in bobcat)) == ["location_100", "location_38"]


def test_officehome_accepts_real_world_with_underscore(tmp_path):
    make_domainbed(tmp_path, "officehome")
    base = tmp_path / "office_home"
    (base / "Real World").rename(base / "Real_World")
    index, splits = registry.prepare_dataset("officehome", tmp_path, **{**OPTS, "holdout_domains": ["Real World"]})
    assert index.domains[-1] == "Real World"
    assert all("Real_World" in p for p, d in zip(index.paths, index.domain_ids) if d == 3)


# ----------------------------------------------------------------------------- ImageNet

WNIDS = {"tench": "n01440764", "goldfish": "n01443537", "stingray": "n01498041", "goldfinch": "n01531178"}
# label indices among the 1000 (ImageNet-V2's folder names)
INDEX_1K = {"tench": 0, "goldfish": 1, "stingray": 6, "goldfinch": 11}
IN_A = ["stingray", "goldfinch"]  # both are ImageNet-A classes; tench and goldfish are not
IN_R = ["goldfish", "stingray"]  # ImageNet-R classes


def make_imagenet(root: Path, shifts=("v2", "sketch", "a", "r")) -> Path:
    for c, w in WNIDS.items():
        for k in range(2):
            image(root / "imagenet" / "images" / "train" / w / f"{w}_{k}.JPEG", k)
        image(root / "imagenet" / "images" / "val" / w / f"ILSVRC2012_val_{w}.JPEG")
    if "v2" in shifts:
        for c in ("tench", "goldfish", "stingray"):
            image(root / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / str(INDEX_1K[c]) / "a.jpeg")
    if "sketch" in shifts:
        for c in WNIDS:
            image(root / "imagenet-sketch" / "images" / WNIDS[c] / "sketch_1.JPEG")
    if "a" in shifts:
        for c in IN_A:
            for k in range(3):
                image(root / "imagenet-adversarial" / "imagenet-a" / WNIDS[c] / f"{k}.jpg", k)
        (root / "imagenet-adversarial" / "imagenet-a" / "README.txt").write_text("readme")
    if "r" in shifts:
        for c in IN_R:
            image(root / "imagenet-rendition" / "imagenet-r" / WNIDS[c] / "art_0.jpg")
    return root


def test_imagenet_with_its_shift_sets(tmp_path):
    make_imagenet(tmp_path)
    with pytest.warns(PartialImageNet, match="4 of 1000 class folders"):
        index, splits = registry.prepare_dataset("imagenet", tmp_path, **OPTS)
    order = sorted(WNIDS, key=WNIDS.get)  # label order = sorted WordNet ids
    assert index.class_folders == [WNIDS[c] for c in order]
    assert index.class_names == order  # CLIP's readable names
    assert index.domains == ["imagenet", "imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"]
    assert len(splits.train) == 8 and splits.train_domains == ["imagenet"]
    assert splits.train_classes == [0, 1, 2, 3]
    sets = {es.name: es for es in splits.evals}
    assert list(sets) == ["imagenet/val", "imagenet-v2/test", "imagenet-sketch/test", "imagenet-a/test",
                          "imagenet-r/test"]
    assert all(es.role == "test" for es in splits.evals)
    assert [len(sets[n].indices) for n in sets] == [4, 3, 4, 6, 2]
    label = {c: order.index(c) for c in order}
    assert sets["imagenet-a/test"].classes == sorted(label[c] for c in IN_A)
    assert sets["imagenet-r/test"].classes == sorted(label[c] for c in IN_R)
    assert sets["imagenet-v2/test"].classes is None and sets["imagenet/val"].classes is None
    # Each image carries the label of its class folder (V2: folder = index among the 1000).
    for n, es in sets.items():
        for i in es.indices:
            path = Path(index.paths[i])
            folder = path.parent.name
            wnid = folder if folder.startswith("n") else {str(INDEX_1K[c]): WNIDS[c] for c in WNIDS}[folder]
            assert index.class_folders[index.labels[i]] == wnid, (n, path)
    # train and val images are disjoint and come from their folders
    assert all("/train/" in index.paths[i] for i in splits.train)
    assert all("/val/" in index.paths[i] for i in sets["imagenet/val"].indices)


def test_imagenet_base_to_new_and_shots(tmp_path):
    make_imagenet(tmp_path, shifts=())
    with pytest.warns(PartialImageNet):
        index, splits = registry.prepare_dataset("imagenet", tmp_path, **OPTS, base_to_new=True, shots=1)
    assert splits.base_classes == [0, 1] and splits.new_classes == [2, 3]
    assert len(splits.train) == 2 and {index.labels[i] for i in splits.train} == {0, 1}


def test_imagenet_without_shift_sets_warns_and_evaluates_val_only(tmp_path):
    make_imagenet(tmp_path, shifts=("a",))
    with pytest.warns(PartialImageNet) as record:
        index, splits = registry.prepare_dataset("imagenet", tmp_path, **OPTS)
    assert [es.name for es in splits.evals] == ["imagenet/val", "imagenet-a/test"]
    msg = " ".join(str(w.message) for w in record)
    assert "imagenet-v2" in msg and str(tmp_path / "imagenetv2") in msg


def test_imagenet_val_must_be_sorted_into_class_folders(tmp_path):
    make_imagenet(tmp_path, shifts=())
    image(tmp_path / "imagenet" / "images" / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.warns(PartialImageNet), pytest.raises(DataError, match="one folder per WordNet id"):
        registry.prepare_dataset("imagenet", tmp_path, **OPTS)


def test_imagenet_plain_train_val_layout_is_accepted(tmp_path):
    make_imagenet(tmp_path, shifts=())
    (tmp_path / "imagenet" / "images" / "train").rename(tmp_path / "imagenet" / "train")
    (tmp_path / "imagenet" / "images" / "val").rename(tmp_path / "imagenet" / "val")
    with pytest.warns(PartialImageNet):
        index, splits = registry.prepare_dataset("imagenet", tmp_path, **OPTS)
    assert len(splits.train) == 8


@pytest.mark.parametrize("name,classes,subset", [
    ("imagenet-v2", ["tench", "goldfish", "stingray"], False),
    ("imagenet-sketch", list(WNIDS), False),
    ("imagenet-a", IN_A, True),
    ("imagenet-r", IN_R, True),
])
def test_imagenet_shift_set_on_its_own(tmp_path, name, classes, subset):
    make_imagenet(tmp_path)
    index, splits = registry.prepare_dataset(name, tmp_path, training=False, **OPTS)
    assert index.num_classes == 1000  # the classes an ImageNet model was trained on
    assert index.class_names[0] == "tench" and index.class_folders[0] == "n01440764"
    assert index.domains == [name] and splits.train == []
    (es,) = splits.evals
    assert (es.name, es.role) == (f"{name}/test", "test")
    assert sorted({index.labels[i] for i in es.indices}) == sorted(INDEX_1K[c] for c in classes)
    assert es.classes == (sorted(INDEX_1K[c] for c in classes) if subset else None)


def test_imagenet_a_rejects_a_folder_outside_its_200_classes(tmp_path):
    make_imagenet(tmp_path, shifts=("a",))
    image(tmp_path / "imagenet-adversarial" / "imagenet-a" / WNIDS["tench"] / "x.jpg")
    with pytest.raises(DataError, match="is not one of the 200 ImageNet-A classes"):
        registry.prepare_dataset("imagenet-a", tmp_path, training=False, **OPTS)


def test_imagenet_v2_folders_must_be_label_indices(tmp_path):
    make_imagenet(tmp_path, shifts=("v2",))
    image(tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / "1000" / "x.jpg")
    with pytest.raises(DataError, match="label indices 0..999"):
        registry.prepare_dataset("imagenet-v2", tmp_path, training=False, **OPTS)


# ----------------------------------------------------------------------------- CoOp datasets

# dataset -> (folder, image folder, split-file name, image path pattern, raw class names, readable names)
COOP = {
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
                   "{c}/image_{n:04d}.jpg", ["accordion", "airplane", "face"], ["accordion", "airplane", "face"]),
    "oxfordpets": ("oxford_pets", "images", "split_zhou_OxfordPets.json", "{c}_{n}.jpg",
                   ["abyssinian", "american_bulldog", "beagle"], ["abyssinian", "american bulldog", "beagle"]),
    "stanfordcars": ("stanford_cars", "", "split_zhou_StanfordCars.json", "cars_train/{c}{n:05d}.jpg",
                     ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 BMW M3 Coupe"],
                     ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 BMW M3 Coupe"]),
    "flowers102": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json", "image_{c}{n:05d}.jpg",
                   ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"],
                   ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]),
    "food101": ("food-101", "images", "split_zhou_Food101.json", "{c}/{n}.jpg",
                ["apple_pie", "baby_back_ribs", "baklava"], ["apple pie", "baby back ribs", "baklava"]),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json", "a/{c}/sun_{n}.jpg",
               ["abbey", "airplane_cabin", "outdoor apartment_building"],
               ["abbey", "airplane cabin", "outdoor apartment building"]),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json", "{c}/{c}_{n:04d}.jpg",
            ["banded", "blotchy", "braided"], ["banded", "blotchy", "braided"]),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json", "{c}/{c}_{n}.jpg",
                ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land"],
                ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land"]),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", "{c}/v_{c}_g{n:02d}_c01.jpg",
               ["Apply_Eye_Makeup", "Archery", "Band_Marching"], ["Apply Eye Makeup", "Archery", "Band Marching"]),
}
SIZES = {"train": 2, "val": 1, "test": 1}  # images per class in each split


def make_coop(root: Path, name: str) -> tuple[Path, list[str]]:
    folder, image_dir, split_file, pattern, raw, _ = COOP[name]
    base = root / folder
    images = base / image_dir if image_dir else base
    split, n = {}, 0
    for s, k in SIZES.items():
        split[s] = []
        for label, c in enumerate(raw):
            for _ in range(k):
                rel = pattern.format(c=c.replace(" ", "_"), n=n)
                n += 1
                image(images / rel, n)
                split[s].append([rel, label, c])
    (base / split_file).write_text(json.dumps(split))
    return base, raw


def make_fgvc(root: Path) -> list[str]:
    base = root / "fgvc_aircraft"
    variants = ["707-320", "A300B4", "Cessna 172"]
    (base / "images").mkdir(parents=True)
    (base / "variants.txt").write_text("\n".join(variants) + "\n")
    n = 0
    for s, k in SIZES.items():
        lines = []
        for v in variants:
            for _ in range(k):
                image(base / "images" / f"{1000000 + n}.jpg", n)
                lines.append(f"{1000000 + n} {v}")
                n += 1
        (base / f"images_variant_{s}.txt").write_text("\n".join(lines) + "\n")
    return variants


@pytest.mark.parametrize("name", list(COOP) + ["fgvcaircraft"])
def test_coop_dataset_reads_its_split_file(tmp_path, name):
    if name == "fgvcaircraft":
        raw = readable = make_fgvc(tmp_path)
    else:
        _, raw = make_coop(tmp_path, name)
        readable = COOP[name][5]
    index, splits = registry.prepare_dataset(name, tmp_path, training=not registry.get(name).test_only, **OPTS)
    assert index.domains == [name]
    assert index.class_folders == raw  # label order of the split file, not sorted
    assert index.class_names == readable
    assert len(splits.train) == 2 * len(raw)
    assert [(es.name, es.role, len(es.indices)) for es in splits.evals] == [
        (f"{name}/val", "val", len(raw)), (f"{name}/test", "test", len(raw))]
    for i in range(len(index)):
        assert Path(index.paths[i]).is_file()
    # base-to-new: the first ceil(C/2) labels are base; few-shot keeps that many per class
    index, splits = registry.prepare_dataset(name, tmp_path, **OPTS, base_to_new=True, shots=1)
    assert splits.base_classes == [0, 1] and splits.new_classes == [2]
    assert sorted(index.labels[i] for i in splits.train) == [0, 1]


def test_coop_split_file_errors_name_the_file(tmp_path):
    base, _ = make_coop(tmp_path, "dtd")
    split_path = base / "split_zhou_DescribableTextures.json"
    split = json.loads(split_path.read_text())
    missing = base / "images" / split["test"][0][0]
    missing.unlink()
    with pytest.raises(DataError, match=r"1 of 12 images named in .*split_zhou_DescribableTextures.json are missing"):
        registry.prepare_dataset("dtd", tmp_path, **OPTS)
    image(missing)
    split["val"][0][2] = "striped"  # label 0 called two names
    split_path.write_text(json.dumps(split))
    with pytest.raises(DataError, match="label 0 is named both"):
        registry.prepare_dataset("dtd", tmp_path, **OPTS)
    split_path.write_text('{"train": [["a.jpg", "zero", "banded"]], "val": [], "test": []}')
    with pytest.raises(DataError, match=r"train\[0\] is .*expected \[image path, label >= 0, class name\]"):
        registry.prepare_dataset("dtd", tmp_path, **OPTS)
    split_path.write_text("{not json")
    with pytest.raises(DataError, match="not a valid JSON split file"):
        registry.prepare_dataset("dtd", tmp_path, **OPTS)


def test_fixed_test_sets_refuse_holdout_domains(tmp_path):
    make_coop(tmp_path, "eurosat")
    with pytest.raises(DataError, match="--holdout-domain: --dataset eurosat has fixed test sets"):
        registry.prepare_dataset("eurosat", tmp_path, **{**OPTS, "holdout_domains": ["eurosat"]})


# ----------------------------------------------------------------------------- missing datasets


@pytest.mark.parametrize("name", registry.names())
def test_missing_dataset_gives_the_documented_error(tmp_path, name):
    bench = registry.get(name)
    with pytest.raises(DataError) as err:
        registry.prepare_dataset(name, tmp_path, training=False, **OPTS)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1
    expected = tmp_path / bench.folders[0]
    assert msg.startswith(f"--dataset {name}: {bench.title} not found: {expected} is missing")
    assert bench.url in msg and f"docs/datasets.md#{name}" in msg and bench.layout in msg


def test_missing_part_of_a_dataset_names_that_part(tmp_path):
    make_domainbed(tmp_path, "pacs")
    (tmp_path / "PACS" / "sketch").rename(tmp_path / "PACS" / "Sketches")
    with pytest.raises(DataError, match=f"not found: {tmp_path / 'PACS' / 'sketch'} is missing"):
        registry.prepare_dataset("pacs", tmp_path, **OPTS)
    base, _ = make_coop(tmp_path, "eurosat")
    (base / "split_zhou_EuroSAT.json").unlink()
    with pytest.raises(DataError, match=f"{base / 'split_zhou_EuroSAT.json'} is missing"):
        registry.prepare_dataset("eurosat", tmp_path, **OPTS)


def test_docs_list_every_dataset_and_are_generated_from_the_registry():
    doc = Path(__file__).parents[2] / "docs" / "datasets.md"
    assert doc.read_text(encoding="utf-8") == registry.datasets_markdown(), \
        "regenerate: python -m clipood.data.datasets > docs/datasets.md"
    text = doc.read_text(encoding="utf-8")
    for name in registry.names():
        bench = registry.get(name)
        assert f'<a id="{name}"></a>' in text and bench.url in text and bench.tree.strip() in text


# ----------------------------------------------------------------------------- config, CLI, evaluation


def test_config_dataset_option(tmp_path):
    from clipood.training.experiment import prepare_data
    cfg = Config()
    cfg.data.root, cfg.data.dataset = str(tmp_path), "pacs_typo"
    with pytest.raises(ConfigError, match="--dataset: unknown dataset 'pacs_typo'; known: pacs, vlcs"):
        prepare_data(validate(cfg))
    cfg.data.dataset = "imagenet-a"
    with pytest.raises(ConfigError, match="imagenet-a is a test set only"):
        prepare_data(validate(cfg))
    with pytest.raises(DataError, match="ImageNet-A not found"):  # evaluation may use it: it is just missing
        prepare_data(validate(cfg, training=False), training=False)
    for name in registry.names():  # the flag's help names every dataset
        assert name in Config.__dataclass_fields__["data"].default_factory.__dataclass_fields__["dataset"] \
            .metadata["help"]


def test_prepare_data_uses_the_registry(tmp_path):
    from clipood.training.experiment import prepare_data
    make_domainbed(tmp_path, "officehome")
    cfg = Config()
    cfg.data.root, cfg.data.dataset, cfg.data.holdout_domains = str(tmp_path), "OfficeHome", ["Art"]
    names = tmp_path / "names.tsv"
    names.write_text("Alarm_Clock\talarm clock\nDesk_Lamp\tdesk lamp\nTV\ttelevision\n")
    cfg.data.class_names = str(names)
    index, splits = prepare_data(cfg)
    assert index.class_names == ["alarm clock", "desk lamp", "television"]
    assert splits.train_domains == ["Clipart", "Product", "Real World"]


def test_cli_lists_datasets_and_where_they_are(tmp_path, capsys):
    from clipood.cli import main
    make_domainbed(tmp_path, "vlcs")
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    rows = {ln.split("|")[1].strip(): ln for ln in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == set(registry.names())
    assert f"found: {tmp_path / 'VLCS'}" in rows["vlcs"] and "Caltech101, LabelMe, SUN09, VOC2007" in rows["vlcs"]
    assert f"missing: {tmp_path / 'PACS'}" in rows["pacs"]
    assert f"missing: {tmp_path / 'imagenet'}" in rows["imagenet"]


def test_cli_missing_dataset_is_one_error_line(tmp_path, capsys):
    from clipood.cli import main
    code = main(["zeroshot", "--dataset", "food101", "--root", str(tmp_path), "--arch", "clipood-tiny",
                 "--pretrained", "none", "--output-dir", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"clipood: error: --dataset food101: Food101 not found: {tmp_path / 'food-101'} is missing")


def test_evaluation_scores_a_class_subset_among_its_classes_only():
    """An ImageNet-A-like set: its images are scored among its classes, not all of them."""
    g = torch.Generator().manual_seed(0)
    n_cls, dim = 6, 8
    weight = torch.nn.functional.normalize(torch.randn(n_cls, dim, generator=g), dim=1)
    feats = torch.nn.functional.normalize(torch.randn(40, dim, generator=g), dim=1)
    subset = [1, 3, 4]
    scores = feats @ weight.T
    labels = [subset[int(i)] for i in torch.randint(0, 3, (40,), generator=g)]
    from clipood.data.folder import ImageIndex
    index = ImageIndex(Path("."), ["d"], [str(c) for c in range(n_cls)], [str(c) for c in range(n_cls)],
                       [f"{i}.png" for i in range(40)], labels, [0] * 40)
    ids = torch.arange(40)
    evals = [EvalSet("d", "test", "test", list(range(40)), classes=subset),
             EvalSet("d", "all", "test", list(range(40)))]
    out = accuracies(feats, ids, index, evals, ClassWeights(weight), base=[0, 1, 2], new=[3, 4, 5])
    y = torch.tensor(labels)
    sub = torch.tensor(subset)
    expect_sub = float((sub[scores[:, sub].argmax(1)] == y).float().mean())
    expect_all = float((scores.argmax(1) == y).float().mean())
    assert out["d/test"]["accuracy"] == pytest.approx(expect_sub)
    assert out["d/all"]["accuracy"] == pytest.approx(expect_all)
    assert expect_sub != expect_all  # the subset changes the answer here
    # base/new within the subset: base = {1}, new = {3, 4}
    is_base = y == 1
    new_cls = torch.tensor([3, 4])
    expect_new = float((new_cls[scores[~is_base][:, new_cls].argmax(1)] == y[~is_base]).float().mean())
    assert out["d/test"]["base"] == pytest.approx(1.0) and out["d/test"]["n_base"] == int(is_base.sum())
    assert out["d/test"]["new"] == pytest.approx(expect_new)


def test_zeroshot_run_on_imagenet_reports_each_shift_set(tmp_path, tiny_pretrained):
    from clipood.commands import zeroshot as run_zeroshot
    make_imagenet(tmp_path / "data")
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.dataset, cfg.data.workers = str(tmp_path / "data"), "imagenet", 0
    cfg.run.output_dir, cfg.run.name = str(tmp_path / "runs"), "zs"
    cfg.eval.batch_size = 16
    with pytest.warns(PartialImageNet):
        _, results = run_zeroshot(validate(cfg, training=False), progress=False)
    zs = results["zeroshot"]
    assert {k: v["n"] for k, v in zs.items()} == {"imagenet/val": 4, "imagenet-v2/test": 3,
                                                  "imagenet-sketch/test": 4, "imagenet-a/test": 6,
                                                  "imagenet-r/test": 2}
    assert all(v["role"] == "test" and 0.0 <= v["accuracy"] <= 1.0 for v in zs.values())
    assert results["benchmark"] == "imagenet"
    assert results["eval_sets"]["imagenet-a/test"]["classes"] == 2
    assert "classes" not in results["eval_sets"]["imagenet-v2/test"]


def test_train_base_to_new_on_a_coop_dataset(tmp_path, tiny_pretrained):
    from clipood.commands import train as run_train
    make_coop(tmp_path / "data", "eurosat")
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.dataset, cfg.data.workers = str(tmp_path / "data"), "eurosat", 0
    cfg.data.base_to_new = True
    cfg.train.steps, cfg.train.batch_size, cfg.train.checkpoint_every = 3, 4, 0
    cfg.run.output_dir = str(tmp_path / "runs")
    run, results = run_train(validate(cfg), progress=False)
    assert run.path.name.startswith("eurosat-mms-bma-all-b2n-seed0-")
    assert results["train_domains"] == ["eurosat"] and results["train_images"] == 4  # 2 base classes x 2
    final = results["final"]
    assert list(final) == ["eurosat/val", "eurosat/test"]
    assert final["eurosat/test"]["n_base"] == 2 and final["eurosat/test"]["n_new"] == 1
    meta = json.loads((run.path / "model" / "clipood.json").read_text())
    assert meta["class_names"] == COOP["eurosat"][5] and meta["train_classes"] == [0, 1]
    # --template auto: the official code's EuroSAT prompt, used and recorded
    assert meta["templates"] == results["templates"] == ["a centered satellite photo of {}."]


# The official code's prompt per dataset (converter_dassl.CUSTOM_TEMPLATES for CoOp's datasets and ImageNet's;
# engine.py's 'a photo of a {}.' for the DomainBed tasks), keyed by clipood's dataset names.
OFFICIAL_PROMPTS = {
    "oxfordpets": "a photo of a {}, a type of pet.", "flowers102": "a photo of a {}, a type of flower.",
    "fgvcaircraft": "a photo of a {}, a type of aircraft.", "dtd": "{} texture.",
    "eurosat": "a centered satellite photo of {}.", "stanfordcars": "a photo of a {}.",
    "food101": "a photo of {}, a type of food.", "sun397": "a photo of a {}.", "caltech101": "a photo of a {}.",
    "ucf101": "a photo of a person doing {}.", "imagenet": "a photo of a {}.", "imagenet-sketch": "a photo of a {}.",
    "imagenet-v2": "a photo of a {}.", "imagenet-a": "a photo of a {}.", "imagenet-r": "a photo of a {}.",
    "pacs": "a photo of a {}.", "vlcs": "a photo of a {}.", "officehome": "a photo of a {}.",
    "terraincognita": "a photo of a {}.", "domainnet": "a photo of a {}.",
}


def test_every_dataset_prompts_as_the_official_code():
    from clipood.templates import expand_templates
    assert set(OFFICIAL_PROMPTS) == set(registry.names())
    for name, prompt in OFFICIAL_PROMPTS.items():
        assert registry.prompt_template(name) == prompt, name
        assert expand_templates(["auto"], registry.prompt_template(name)) == [prompt]
    assert registry.prompt_template(None) == "a photo of a {}."  # a folder
    assert "a centered satellite photo of {}." in registry.datasets_markdown()
