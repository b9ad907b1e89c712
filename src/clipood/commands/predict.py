"""``clipood predict``: classify images with an exported model or any CLIP, over class names given now.

This is what CLIPood is for: the text tower is frozen, so any class set can be scored by
encoding its names (with the model's templates, or ``--template``'s), with no training. Without
``--classes`` the model's own classes are used, with its own head (a linear head included). Any CLIP
predicts too, open-vocabulary: a plain open_clip folder (``--model FOLDER`` without clipood.json) or a
model by name (``--arch NAME --pretrained TAG``), with ``--classes``.
Scores are the softmax over the classes of the logits S / tau, tau being the model's.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..console import progress_bar, warn
from ..data.bad_images import BadImages
from ..data.folder import images_under
from ..data.images import is_image_file, not_a_regular_file
from ..data.loading import PathDataset, collate
from ..errors import ConfigError, DataError
from ..io import atomic_path, read_user_text
from ..model import load_backbone
from ..model.heads import encode_class_texts
from ..model.weights import AUTO, check_arch
from ..templates import DEFAULT_TEMPLATE, expand_templates
from ..training.device import resolve_device
from .export import Classifier, exported_model_dir, is_export, load_classifier, read_model_meta, zero_shot_classifier

__all__ = ["LIST_SUFFIXES", "Predictions", "image_paths", "predict", "read_classes", "write_predictions"]

LIST_SUFFIXES = (".txt", ".lst")  # a file of image paths, one per line


@dataclass
class Predictions:
    paths: list[str]
    classes: list[str]
    top: list[list[tuple[str, float]]]   # per image: (class, probability) best first; [] when unreadable
    errors: dict[str, str]               # unreadable path -> reason (--bad-images skip)
    seconds: float

    def summary(self) -> str:
        counts = Counter(t[0][0] for t in self.top if t)
        common = ", ".join(f"{name} {n}" for name, n in counts.most_common(5))
        skipped = f"; {len(self.errors)} unreadable, skipped" if self.errors else ""
        rate = len(self.paths) / self.seconds if self.seconds > 0 else float("inf")
        return (f"predicted {len(self.paths) - len(self.errors)} image(s) over {len(self.classes)} classes in "
                f"{self.seconds:.1f} s ({rate:.1f} images/s){skipped}; most frequent top-1: {common or 'none'}")


def read_classes(classes: Optional[str], classes_file: Optional[str | Path]) -> Optional[list[str]]:
    """--classes a,b,c or --classes-file (one per line); None: the model's own classes."""
    if classes and classes_file:
        raise ConfigError("--classes and --classes-file: give one of them")
    if classes_file:
        names = [x.strip() for x in read_user_text(classes_file, "--classes-file", ConfigError).splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        where = f"--classes-file {classes_file}"
    elif classes is not None:
        names, where = [x.strip() for x in classes.split(",") if x.strip()], "--classes"
    else:
        return None
    if len(names) < 2:
        raise ConfigError(f"{where}: give at least two class names (got {len(names)})")
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise ConfigError(f"{where}: class names appear twice: {', '.join(dupes[:5])}")
    return names


def image_paths(inputs: Sequence[str | Path]) -> list[str]:
    """Image files, folders (every image below, sorted) and list files (.txt/.lst: a path per line, relative
    to the list's folder), each image once, in the order given."""
    out, seen = [], set()

    def add(p: Path) -> None:
        key = str(p.resolve())
        if key not in seen:
            seen.add(key)
            out.append(str(p))

    for raw in inputs:
        p = Path(raw).expanduser()
        kind = not_a_regular_file(p)
        if p.is_dir():
            for img in images_under(p):
                add(img)
        elif kind not in (None, "missing"):
            raise DataError(f"{p}: {kind}, not an image file nor a list of paths; only regular files are read")
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            for n, line in enumerate(read_user_text(p, "INPUT").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                q = (p.parent / line).expanduser()
                why = not_a_regular_file(q)
                if why is not None:
                    raise DataError(f"{p}, line {n}: {q} is {'not a file (missing)' if why == 'missing' else why}; "
                                    f"only regular files are images")
                add(q)
        elif p.is_file():
            if not is_image_file(p):
                raise DataError(f"{p}: not an image file (by its extension) nor a list of paths ("
                                f"{', '.join(LIST_SUFFIXES)})")
            add(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not out:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}")
    return out


def with_classes(clf: Classifier, names: list[str], templates: Sequence[str]) -> Classifier:
    """The same image tower scoring ``names`` by their class texts (the text tower is frozen), or by the export's
    learned prompts (CoOp, CoCoOp) put in front of them."""
    if clf.prompts is not None:
        prompts = clf.prompts.for_classes(names)
        head = prompts.class_features() if prompts.meta_net is None else clf.head
        return replace(clf, class_names=names, head=head.to(clf.head.device), bias=None, prompts=prompts)
    text = encode_class_texts(clf.model, clf.backbone.tokenizer, names, expand_templates(templates))
    return replace(clf, class_names=names, head=text.to(clf.head.device), bias=None)


def _classifier(model_dir: Optional[str | Path], arch: Optional[str], pretrained: Optional[str],
                classes: Optional[list[str]], templates: Optional[Sequence[str]], dev: torch.device) -> Classifier:
    """The classifier to predict with: an export's own (its classes and head, or its class texts for ``classes``),
    or any CLIP (a plain open_clip folder, ``--arch``) scoring ``classes`` by their class texts."""
    if (model_dir is None) == (arch is None):
        raise ConfigError("--model / --arch: give one of them: --model DIR (an exported model or an open_clip "
                          "folder) or --arch NAME [--pretrained TAG|FILE] (any CLIP, e.g. --arch ViT-B-16 "
                          "--pretrained openai, or --arch local-dir:PATH)")
    if arch is None and pretrained is not None:
        raise ConfigError("--pretrained: applies with --arch (an exported --model carries its own weights)")
    if arch is None:
        model_dir = exported_model_dir(model_dir)  # a wrong --model is named before any folder is scanned
        if is_export(model_dir) or classes is None:  # a plain folder without --classes: load_classifier says so
            clf = load_classifier(model_dir, device=dev)
            if clf.prompts is not None and templates:
                raise ConfigError(f"--template: does not apply to {model_dir}, whose prompts are learned "
                                  f"({read_model_meta(model_dir)['head']}); leave it out")
            if classes is not None:
                clf = with_classes(clf, classes, templates or read_model_meta(model_dir).get("templates")
                                   or [DEFAULT_TEMPLATE])
            return clf
        arch = f"local-dir:{model_dir}"  # a plain open_clip folder: any CLIP, as --arch names one
    elif classes is None:
        raise ConfigError(f"--arch {arch}: a pre-trained CLIP has no classes of its own; name the classes to score "
                          f"with --classes A,B,C (or --classes-file FILE)")
    else:
        check_arch(arch, pretrained or AUTO)  # an unknown name or tag is named before any folder is scanned
    return zero_shot_classifier(load_backbone(arch, pretrained or AUTO, device=dev), classes,
                                templates or [DEFAULT_TEMPLATE])


@torch.no_grad()
def predict(model_dir: Optional[str | Path], inputs: Sequence[str | Path], *, classes: Optional[list[str]] = None,
            templates: Optional[Sequence[str]] = None, top_k: int = 5, batch_size: int = 64, workers: int = 0,
            device: str = "auto", bad_images: str = "fail", progress: bool = True, arch: Optional[str] = None,
            pretrained: Optional[str] = None) -> Predictions:
    """Classify ``inputs`` with an exported model or plain open_clip folder (``model_dir``), or with any CLIP by
    name (``arch`` and ``pretrained``, model_dir None); ``classes``: the names to score (None: the export's own)."""
    if top_k < 1:
        raise ConfigError(f"--top-k: {top_k} is out of range; allowed: an integer >= 1")
    if batch_size < 1:
        raise ConfigError(f"--batch-size: {batch_size} is out of range; allowed: an integer >= 1")
    if workers < 0:
        raise ConfigError(f"--workers: {workers} is out of range; allowed: an integer >= 0")
    if templates and classes is None:
        raise ConfigError("--template: applies with --classes or --classes-file (the model's own classes keep "
                          "its own head)")
    dev = resolve_device(device)
    clf = _classifier(model_dir, arch, pretrained, classes, templates, dev)
    paths = image_paths(inputs)
    loader = torch.utils.data.DataLoader(PathDataset(paths, clf.preprocess), batch_size=batch_size,
                                         num_workers=workers, collate_fn=collate)
    bad = BadImages(bad_images, paths)
    top: list[list[tuple[str, float]]] = [[] for _ in paths]
    k = min(top_k, len(clf.class_names))
    if k < top_k:
        warn(f"--top-k {top_k}: there are {k} classes; each row lists all {k}")
    t0 = time.perf_counter()
    bar = progress_bar(total=len(paths), desc="predict", unit="img", disable=not progress)
    for images, idx, unreadable in loader:
        bad(unreadable)
        if images is not None:
            probs = clf.scores(images.to(dev)).float().softmax(dim=-1)
            p, c = probs.topk(k, dim=-1)
            for row, i in enumerate(idx.tolist()):
                top[i] = [(clf.class_names[j], float(v)) for j, v in zip(c[row].tolist(), p[row].tolist())]
        bar.update(len(idx) + len(unreadable))
    bar.close()
    return Predictions(paths, clf.class_names, top, dict(bad.items()), time.perf_counter() - t0)


def write_predictions(pred: Predictions, out: str | Path, top_k: int) -> Path:
    """CSV: path, label_1, score_1, ..., label_k, score_k, error (one row per image, in input order)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; give a file name, e.g. {out / 'predictions.csv'}")
    k = min(top_k, len(pred.classes))
    header = ["path"] + [x for i in range(1, k + 1) for x in (f"label_{i}", f"score_{i}")] + ["error"]
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for path, top in zip(pred.paths, pred.top):
                cells = [x for name, p in top for x in (name, f"{p:.6f}")] or [""] * (2 * k)
                w.writerow([path, *cells, pred.errors.get(path, "")])
    return out
