"""DenseNet-style convolutions: every layer's output is concatenated to its input."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.encoders.layers import MaskedConv1d, make_activation, make_norm


class DenseLayer(nn.Module):
    """norm -> activation -> [1-wide bottleneck to 4 * growth -> norm -> activation] -> conv to
    ``growth`` channels -> dropout; the caller concatenates the result to the input."""

    def __init__(self, channels: int, growth: int, kernel: int, bottleneck: bool, activation: str,
                 norm: str, dropout: float):
        super().__init__()
        self.norm = make_norm(norm, channels)
        self.bottleneck = MaskedConv1d(channels, 4 * growth, kernel=1) if bottleneck else None
        self.bottleneck_norm = make_norm(norm, 4 * growth) if bottleneck else None
        self.conv = MaskedConv1d(4 * growth if bottleneck else channels, growth, kernel)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.norm(h))
        if self.bottleneck is not None:
            y = self.activation(self.bottleneck_norm(self.bottleneck(y, m)))
        return self.dropout(self.conv(y, m))


class DenseEncoder(nn.Module):
    """A 1-wide projection to ``width``, then ``blocks`` dense blocks of ``layers_per_block``
    layers (each adds ``growth`` channels), with 1-wide transition layers between blocks that
    compress the width by ``compression``; a final norm.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, output_dim]``; masked output
    positions are zero. Receptive field: ``1 + blocks * layers_per_block * (kernel - 1)``.
    """

    def __init__(self, input_dim: int, width: int = 64, growth: int = 32, layers_per_block: int = 4,
                 blocks: int = 2, kernel: int = 3, bottleneck: bool = True, compression: float = 0.5,
                 activation: str = "relu", norm: str = "layer", dropout: float = 0.1):
        super().__init__()
        if blocks < 1 or layers_per_block < 1 or not 0 < compression <= 1:
            raise ValueError("need blocks >= 1, layers_per_block >= 1 and 0 < compression <= 1")
        self.project = MaskedConv1d(input_dim, width, kernel=1)
        self.layers = nn.ModuleList()
        self.transitions = nn.ModuleList()
        channels = width
        for block in range(blocks):
            for _ in range(layers_per_block):
                self.layers.append(DenseLayer(channels, growth, kernel, bottleneck, activation, norm, dropout))
                channels += growth
            if block < blocks - 1:
                compressed = max(1, int(channels * compression))
                self.transitions.append(MaskedConv1d(channels, compressed, kernel=1))
                channels = compressed
        self.layers_per_block = layers_per_block
        self.final_norm = make_norm(norm, channels)
        self.output_dim = channels

    @property
    def receptive_field(self) -> int:
        return 1 + sum(layer.conv.receptive_field_growth for layer in self.layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)        # (B, 1, T)
        h = self.project(x.transpose(1, 2), m)  # (B, width, T)
        for i, layer in enumerate(self.layers):
            h = torch.cat([h, layer(h, m)], dim=1)  # (B, C + growth, T)
            end_of_block = (i + 1) % self.layers_per_block == 0
            if end_of_block and i // self.layers_per_block < len(self.transitions):
                h = self.transitions[i // self.layers_per_block](h, m)
        return (self.final_norm(h) * m).transpose(1, 2)  # (B, T, output_dim)
