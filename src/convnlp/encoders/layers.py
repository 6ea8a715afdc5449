"""Small pieces the convolutional encoders compose. All work in the (B, C, T) layout.

Every convolution here first zeroes masked (padding) positions, so padding never leaks into
real positions, whatever the padding is and however much of it there is.

One memory layout throughout: a (B, C, T) tensor here is stored channels-last, as the (B, T, C)
the encoders receive (``x.transpose(1, 2)`` is a view, not a copy). The convolutions run as
channels-last 2-D convolutions over a height of 1, which oneDNN computes about twice as fast on
a CPU as a 1-D convolution on (B, C, T)-contiguous memory, and which return channels-last
again, so the normalization over channels reads contiguous memory and nothing is copied
between layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.registry import fraction, option

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
NORMS = ("layer", "none")


def odd_kernel(k) -> bool:
    return isinstance(k, int) and k >= 1 and k % 2 == 1


def activation_option(default: str = "relu"):
    return option(default, choices=tuple(ACTIVATIONS), help="the nonlinearity after each convolution")


def norm_option(default: str = "layer"):
    return option(default, choices=NORMS, help="layer: LayerNorm over channels at each position; none")


def dropout_option(default: float):
    return option(default, fraction(), help="dropout after each layer")


class MaskedConv1d(nn.Conv1d):
    """A same-length 1-D convolution that ignores padding: masked inputs are zeroed first."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, dilation: int = 1, groups: int = 1):
        """``groups``: as nn.Conv1d's (``groups=in_channels=out_channels``: one filter per channel,
        a depthwise convolution)."""
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd to keep the length, got {kernel}")
        super().__init__(
            in_channels, out_channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2, groups=groups
        )

    @property
    def receptive_field_growth(self) -> int:
        """How many input positions this layer adds to the receptive field."""
        return self.dilation[0] * (self.kernel_size[0] - 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T), mask: (B, 1, T) with 1.0 for real positions; the output is channels-last
        x = (x * mask).unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (B, C, 1, T), no copy if
        weight = self.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # already channels-last
        y = F.conv2d(
            x,
            weight,
            self.bias,
            stride=(1, self.stride[0]),
            padding=(0, self.padding[0]),
            dilation=(1, self.dilation[0]),
            groups=self.groups,
        )
        return y.squeeze(2)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each position of a (B, C, T) tensor: no mixing across time."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer_norm normalizes trailing dims: (B, T, C), a view of channels-last memory
        y = F.layer_norm(x.transpose(1, 2), self.weight.shape, self.weight, self.bias, self.eps)
        return y.transpose(1, 2)


def make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "layer":
        return ChannelNorm(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'layer' or 'none', got {norm!r}")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()
