"""Icon augmentation: the optional zoom-out and greyscale do what they say, and only when asked."""

from __future__ import annotations

import torch
from PIL import Image

from clipood.pretraining.transforms import ZOOM_OUT_SCALE, icon_train_transform

PRE = {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}
# rotation, crop and jitter off: the image passes through unchanged unless the option under test acts
STILL = dict(crop_min_scale=1.0, rotation=0.0, color_jitter=0.0)


def _pixels(transform, image) -> torch.Tensor:
    return transform(image) * 0.5 + 0.5  # back to [0, 1]


def test_zoom_out_shrinks_the_drawing_into_a_white_frame():
    torch.manual_seed(0)
    black = Image.new("RGB", (32, 32), "black")
    assert _pixels(icon_train_transform(PRE, **STILL), black).max() < 0.01  # nothing added by default
    for _ in range(10):
        x = _pixels(icon_train_transform(PRE, zoom_out=1.0, **STILL), black)
        dark = (x.mean(0) < 0.5).float()
        rows, cols = dark.any(1).nonzero(), dark.any(0).nonzero()
        side = int(rows.max() - rows.min() + 1)
        assert ZOOM_OUT_SCALE[0] * 32 - 2 <= side <= ZOOM_OUT_SCALE[1] * 32 + 2
        assert int(cols.max() - cols.min() + 1) == side  # shrunk, not squashed
        assert torch.all(x[:, 0, :] > 0.99) and torch.all(x[:, :, -1] > 0.99)  # white frame
        assert abs(int(rows.min()) - (31 - int(rows.max()))) <= 1  # centred


def test_grayscale_makes_channels_equal_and_keeps_colour_otherwise():
    torch.manual_seed(0)
    red = Image.new("RGB", (32, 32), (220, 30, 30))
    grey = _pixels(icon_train_transform(PRE, grayscale=1.0, **STILL), red)
    assert torch.allclose(grey[0], grey[1], atol=1e-6) and torch.allclose(grey[1], grey[2], atol=1e-6)
    colour = _pixels(icon_train_transform(PRE, **STILL), red)
    assert float(colour[0].mean() - colour[1].mean()) > 0.5
