"""Training augmentation for icon-like images (emoji, pictograms, clip art).

Small rotations, random resized crops and brightness/contrast/saturation jitter keep an
icon's meaning. Flips and hue shifts do not: captions name directions and colours ("left
arrow", "red heart", "green apple"), so neither is used. Two optional ones push the model
towards shape over a designer's habits: zoom-out (the drawing shrunk inside a white frame,
as designers with wide margins draw) and greyscale. Rotated corners and frames are filled
with white, the colour ``data.images.load_rgb`` composites transparency on. Evaluation uses
the backbone's own open_clip preprocessing, as everywhere else in clipood.
"""

from __future__ import annotations

from torchvision import transforms as T

from ..data.transforms import INTERPOLATION

__all__ = ["WHITE", "ZOOM_OUT_SCALE", "icon_train_transform"]

ZOOM_OUT_SCALE = (0.5, 0.9)  # size of the shrunk drawing, as a fraction of the image side
WHITE = (255, 255, 255)


def icon_train_transform(preprocess_cfg: dict, *, crop_min_scale: float = 0.6, rotation: float = 10.0,
                         color_jitter: float = 0.2, zoom_out: float = 0.0, grayscale: float = 0.0):
    size = preprocess_cfg["size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    interp = INTERPOLATION.get(preprocess_cfg.get("interpolation"), T.InterpolationMode.BICUBIC)
    ops = []
    if zoom_out > 0:
        ops.append(T.RandomApply([T.RandomAffine(0, scale=ZOOM_OUT_SCALE, fill=WHITE)], p=zoom_out))
    if rotation > 0:
        ops.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR, fill=WHITE))
    ops.append(T.RandomResizedCrop(size, scale=(crop_min_scale, 1.0), ratio=(3 / 4, 4 / 3), interpolation=interp))
    if color_jitter > 0:
        ops.append(T.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    if grayscale > 0:
        ops.append(T.RandomGrayscale(p=grayscale))
    ops += [T.ToTensor(), T.Normalize(mean=preprocess_cfg["mean"], std=preprocess_cfg["std"])]
    return T.Compose(ops)
