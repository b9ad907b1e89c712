"""Image transforms: open_clip's own eval preprocessing, and the paper's training augmentation.

Training: RandomResizedCrop(size, scale=(0.7, 1.0)) + horizontal flip + the model's
normalisation (the official implementation's augmentation); evaluation: the backbone's
preprocess_val from open_clip (resize shortest side, center crop, normalise).
"""

from __future__ import annotations

from torchvision import transforms as T

__all__ = ["INTERPOLATION", "train_transform"]

INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
                 "nearest": T.InterpolationMode.NEAREST}


def train_transform(preprocess_cfg: dict, scale: tuple[float, float] = (0.7, 1.0)):
    size = preprocess_cfg["size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    return T.Compose([
        T.RandomResizedCrop(size, scale=scale,
                            interpolation=INTERPOLATION.get(preprocess_cfg.get("interpolation"),
                                                            T.InterpolationMode.BICUBIC)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean=preprocess_cfg["mean"], std=preprocess_cfg["std"]),
    ])
