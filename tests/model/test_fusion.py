"""BatchNorm folded into its convolution: the same function (to float rounding), and never where the fold would
change another use of the convolution's output."""

from __future__ import annotations

import torch
from timm.layers import BatchNormAct2d
from torch import nn

from clipood.model.fusion import fold_batchnorm


def _randomise_bn(module: nn.Module) -> None:
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_a_conv_bn_act_stack_folds_to_the_same_function():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), BatchNormAct2d(8, act_layer=nn.ReLU6),
                        nn.Conv2d(8, 4, 1, bias=True), nn.BatchNorm2d(4))
    _randomise_bn(net)
    x = torch.randn(5, 3, 16, 16)
    folded, n = fold_batchnorm(net, x[:2])
    assert n == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.ReLU6) for m in folded.modules())  # BatchNormAct2d keeps its activation
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net.eval()(x), rtol=1e-5, atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is left as it was


class _Reused(nn.Module):
    """The convolution's output is used twice: folding the BatchNorm into it would change the second use."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_convolution_used_elsewhere_is_not_folded():
    net = _Reused()
    _randomise_bn(net)
    x = torch.randn(4, 3, 8, 8)
    folded, n = fold_batchnorm(net, x[:2])
    assert n == 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net.eval()(x))


def test_efficientnet_lite0_folds_every_batchnorm():
    import timm
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    _randomise_bn(net)
    x = torch.randn(3, 3, 64, 64)
    folded, n = fold_batchnorm(net, x[:2])
    assert n == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 49
    with torch.no_grad():
        ref = net.eval()(x)
        assert (folded(x) - ref).abs().max() <= 1e-4 * ref.abs().max()
