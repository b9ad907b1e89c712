"""Accuracy per evaluation split: encode each image once, score every class with one matmul.

Class scores are ``features @ W.T + b`` with W the class-text embeddings (cosine
scoring) or a linear head's weights. With base-to-new classes, 'base' accuracy is over
base-class images scored among base classes only, 'new' likewise, H their harmonic mean
(CoOp), and 'accuracy' is over all images among all classes. A set scored the official
in-the-wild way (``EvalSet.scoring == 'all'``, paper Table 4) scores its base and its new
images among all classes instead. An evaluation set with a class subset (ImageNet-A/-R:
200 of the 1000 classes) is scored among its subset only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .console import progress_bar
from .data.folder import ImageIndex
from .data.loading import ImageDataset, collate
from .data.splits import EvalSet

__all__ = ["ClassWeights", "ImageConditionalScores", "accuracies", "encode_images", "harmonic_mean", "input_format"]


@dataclass
class ClassWeights:
    """W (C, D) and optional bias (C) over all classes of the dataset."""

    weight: torch.Tensor
    bias: Optional[torch.Tensor] = None

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        s = features.to(self.weight.dtype) @ self.weight.T
        return s if self.bias is None else s + self.bias


@dataclass
class ImageConditionalScores:
    """A classifier that depends on the image (CoCoOp): ``score(features)`` -> (N, C) for a batch of features,
    run ``batch_size`` images at a time under no_grad; there is no weight matrix."""

    score: Callable[[torch.Tensor], torch.Tensor]
    num_classes: int
    batch_size: int = 64
    bias = None

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> torch.Tensor:
        if not len(features):
            return torch.empty(0, self.num_classes)
        return torch.cat([self.score(f).float().cpu() for f in features.split(self.batch_size)])


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def input_format(visual: torch.nn.Module) -> torch.memory_format:
    """channels_last when the tower's convolution weights are (``--channels-last``), so images match them."""
    w = next((p for p in visual.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1), None)
    if w is not None and not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@torch.no_grad()
def encode_images(visual: torch.nn.Module, index: ImageIndex, indices: Sequence[int], transform: Callable, *,
                  batch_size: int, device: torch.device, workers: int = 0, autocast_dtype=None,
                  on_bad: Callable[[list], None] = lambda bad: None, desc: str = "encode",
                  progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised image features (N', D) and their image indices (N'), unreadable images left out."""
    was_training = visual.training
    visual.eval()
    loader = torch.utils.data.DataLoader(
        ImageDataset(index, transform, indices), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate, pin_memory=device.type == "cuda")
    feats, idxs = [], []
    fmt = input_format(visual)
    bar = progress_bar(total=len(indices), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    for images, idx, bad in loader:
        on_bad(bad)
        if images is not None:
            images = images.to(device, non_blocking=True).contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                f = visual(images)
            feats.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
            idxs.append(idx)
        bar.update(len(idx) + len(bad))
    bar.close()
    visual.train(was_training)
    if not feats:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(idxs)


def _accuracy(scores: torch.Tensor, labels: torch.Tensor, classes: Optional[Sequence[int]]) -> tuple[float, int]:
    """Top-1 accuracy of images whose label is in ``classes``, scored among ``classes`` only."""
    if classes is None:
        n = len(labels)
        return (int((scores.argmax(1) == labels).sum()) / n if n else float("nan")), n
    cls = torch.as_tensor(list(classes), dtype=torch.long)
    keep = torch.isin(labels, cls)
    n = int(keep.sum())
    if n == 0:
        return float("nan"), 0
    pred = cls[scores[keep][:, cls].argmax(1)]
    return int((pred == labels[keep]).sum()) / n, n  # exact count ratio, not a float32 mean


def _accuracy_of(scores: torch.Tensor, labels: torch.Tensor, group: Sequence[int],
                 among: Optional[Sequence[int]]) -> tuple[float, int]:
    """Top-1 accuracy of the images whose label is in ``group``, scored among ``among`` (None: every class)."""
    keep = torch.isin(labels, torch.as_tensor(list(group), dtype=torch.long))
    return _accuracy(scores[keep], labels[keep], among)


def accuracies(features: torch.Tensor, image_ids: torch.Tensor, index: ImageIndex, evals: Sequence[EvalSet],
             weights: ClassWeights | ImageConditionalScores, base: Optional[Sequence[int]] = None,
             new: Optional[Sequence[int]] = None) -> dict[str, dict]:
    """Per eval set: role, n, accuracy (and base, new, H with a class split)."""
    labels_all = torch.as_tensor(index.labels, dtype=torch.long)
    row_of = {int(i): r for r, i in enumerate(image_ids.tolist())}
    out = {}
    for es in evals:
        rows = torch.as_tensor([row_of[i] for i in es.indices if i in row_of], dtype=torch.long)
        f = features[rows] if len(rows) else features[:0]
        scores = weights.scores(f) if len(rows) else torch.empty(0, weights.num_classes)
        labels = labels_all[image_ids[rows]] if len(rows) else torch.empty(0, dtype=torch.long)
        acc, n = _accuracy(scores, labels, es.classes)
        entry = {"domain": es.domain, "split": es.split, "role": es.role, "n": n, "accuracy": acc}
        if base is not None and new is not None:
            subset = None if es.classes is None else set(es.classes)
            in_base = base if subset is None else [c for c in base if c in subset]
            in_new = new if subset is None else [c for c in new if c in subset]
            if es.scoring == "all":  # each half's images, scored among every class of the set
                b, nb = _accuracy_of(scores, labels, in_base, es.classes)
                w, nn_ = _accuracy_of(scores, labels, in_new, es.classes)
            else:
                b, nb = _accuracy(scores, labels, in_base)
                w, nn_ = _accuracy(scores, labels, in_new)
            entry.update(base=b, new=w, H=harmonic_mean(b, w), n_base=nb, n_new=nn_)
        out[es.name] = entry
    return out
