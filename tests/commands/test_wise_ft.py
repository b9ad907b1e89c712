"""WiSE-FT: the interpolated weights (1 - alpha) theta_zeroshot + alpha theta_finetuned."""

from __future__ import annotations

import torch

from clipood.commands.wise_ft import interpolate


def test_wise_ft_interpolation_formula():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor([1])}
    b = {"w": torch.tensor([4.0, -2.0]), "n": torch.tensor([7])}
    out = interpolate(a, b, 0.25)
    torch.testing.assert_close(out["w"], torch.tensor([1.0, 1.0]))  # 0.75 a + 0.25 b
    assert out["n"].item() == 7  # integer buffers are not interpolated
