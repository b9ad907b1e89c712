"""torch Datasets over an ``ImageIndex``, with per-image augmentation seeds and a bad-image policy.

A sample that cannot be decoded comes back as ``None`` with its path; ``collate`` drops
it and reports the path with the batch, and the training/evaluation loop applies the
policy ('fail' raises a DataError naming the file, 'skip' records it). This keeps errors
out of worker-process tracebacks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .folder import ImageIndex
from .images import UnreadableImage, load_rgb

__all__ = ["ImageDataset", "PathDataset", "collate"]


class ImageDataset(torch.utils.data.Dataset):
    """Key: an image index, or (index, augmentation seed) from the training sampler."""

    def __init__(self, index: ImageIndex, transform: Callable, indices: Sequence[int] | None = None):
        self.index = index
        self.transform = transform
        self.indices = list(indices) if indices is not None else None

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.index)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            i, seed = key
        else:
            i, seed = (self.indices[key] if self.indices is not None else key), None
        path = self.index.paths[i]
        try:
            img = load_rgb(path)
        except UnreadableImage as e:
            return None, i, e.reason
        if seed is None:
            x = self.transform(img)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = self.transform(img)
        return x, i, None


class PathDataset(torch.utils.data.Dataset):
    """Images by path (``clipood predict``): (tensor, position, None), or (None, position, reason)."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return self.transform(load_rgb(self.paths[i])), i, None
        except UnreadableImage as e:
            return None, i, e.reason


def collate(batch):
    """Stack good samples; return (images, image indices, [(bad index, reason), ...])."""
    good = [(x, i) for x, i, err in batch if err is None]
    bad = [(i, err) for x, i, err in batch if err is not None]
    if good:
        images = torch.stack([x for x, _ in good])
        idx = torch.tensor([i for _, i in good], dtype=torch.long)
    else:
        images, idx = None, torch.empty(0, dtype=torch.long)
    return images, idx, bad
