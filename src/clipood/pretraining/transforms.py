"""Training augmentation for icon-like images (emoji, pictograms, clip art).

Small rotations, random resized crops and brightness/contrast/saturation jitter keep an
icon's meaning. Flips and hue shifts do not: captions name directions and colours ("left
arrow", "red heart", "green apple"), so neither is used. Rotated corners are filled with
white, the colour ``data.images.load_rgb`` composites transparency on. Evaluation uses the
backbone's own open_clip preprocessing, as everywhere else in clipood.
"""

from __future__ import annotations

from torchvision import transforms as T

from ..data.transforms import INTERPOLATION


def icon_train_transform(preprocess_cfg: dict, *, crop_min_scale: float = 0.6, rotation: float = 10.0,
                         color_jitter: float = 0.2):
    size = preprocess_cfg["size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    interp = INTERPOLATION.get(preprocess_cfg.get("interpolation"), T.InterpolationMode.BICUBIC)
    ops = []
    if rotation > 0:
        ops.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR, fill=(255, 255, 255)))
    ops.append(T.RandomResizedCrop(size, scale=(crop_min_scale, 1.0), ratio=(3 / 4, 4 / 3), interpolation=interp))
    if color_jitter > 0:
        ops.append(T.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    ops += [T.ToTensor(), T.Normalize(mean=preprocess_cfg["mean"], std=preprocess_cfg["std"])]
    return T.Compose(ops)
