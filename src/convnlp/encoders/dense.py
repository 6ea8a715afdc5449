"""DenseNet-style convolutions: every layer's output is concatenated to its input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convnlp.encoders.layers import (
    MaskedConv1d,
    activation_option,
    dropout_option,
    make_activation,
    make_norm,
    norm_option,
)
from convnlp.registry import ENCODERS, Check, at_least, odd, option


@dataclass
class DenseConfig:
    name: str = "dense"
    width: int = option(64, at_least(1), help="channels of the input projection")
    growth: int = option(32, at_least(1), help="channels each layer adds")
    layers_per_block: int = option(4, at_least(1))
    blocks: int = option(2, at_least(1))
    kernel: int = option(3, odd())
    bottleneck: bool = option(True, help="a 1-wide convolution to 4 x growth before each kernel-wide one")
    compression: float = option(
        0.5,
        Check(lambda v: 0 < v <= 1, "must be in (0, 1]"),
        help="transitions between blocks keep this share of the channels",
    )
    activation: str = activation_option()
    norm: str = norm_option()
    dropout: float = dropout_option(0.1)


def at_depth(depth: int, width: int, norm: str) -> DenseConfig:
    blocks = max(1, depth // 8)
    return DenseConfig(
        width=width, growth=max(4, width // 4), layers_per_block=depth // blocks, blocks=blocks, norm=norm, dropout=0.0
    )


class DenseLayer(nn.Module):
    """norm -> activation -> [1-wide bottleneck to 4 * growth -> norm -> activation] -> conv to
    ``growth`` channels -> dropout; the caller concatenates the result to the input."""

    def __init__(
        self, channels: int, growth: int, kernel: int, bottleneck: bool, activation: str, norm: str, dropout: float
    ):
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


@ENCODERS.register(DenseConfig, at_depth=at_depth, size="growth")
class DenseEncoder(nn.Module):
    """A 1-wide projection to ``width``, then ``blocks`` dense blocks of ``layers_per_block``
    layers (each adds ``growth`` channels), with 1-wide transition layers between blocks that
    compress the width by ``compression``; a final norm.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, output_dim]``; masked output
    positions are zero. Receptive field: ``1 + blocks * layers_per_block * (kernel - 1)``.
    """

    def __init__(self, cfg: DenseConfig, input_dim: int):
        super().__init__()
        if cfg.blocks < 1 or cfg.layers_per_block < 1 or not 0 < cfg.compression <= 1:
            raise ValueError("need blocks >= 1, layers_per_block >= 1 and 0 < compression <= 1")
        self.project = MaskedConv1d(input_dim, cfg.width, kernel=1)
        self.layers = nn.ModuleList()
        self.transitions = nn.ModuleList()
        channels = cfg.width
        for block in range(cfg.blocks):
            for _ in range(cfg.layers_per_block):
                self.layers.append(
                    DenseLayer(channels, cfg.growth, cfg.kernel, cfg.bottleneck, cfg.activation, cfg.norm, cfg.dropout)
                )
                channels += cfg.growth
            if block < cfg.blocks - 1:
                compressed = max(1, int(channels * cfg.compression))
                self.transitions.append(MaskedConv1d(channels, compressed, kernel=1))
                channels = compressed
        self.layers_per_block = cfg.layers_per_block
        self.final_norm = make_norm(cfg.norm, channels)
        self.output_dim = channels

    @property
    def receptive_field(self) -> int:
        return 1 + sum(layer.conv.receptive_field_growth for layer in self.layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = self.project(x.transpose(1, 2), m)  # (B, width, T)
        for i, layer in enumerate(self.layers):
            h = torch.cat([h, layer(h, m)], dim=1)  # (B, C + growth, T)
            end_of_block = (i + 1) % self.layers_per_block == 0
            if end_of_block and i // self.layers_per_block < len(self.transitions):
                h = self.transitions[i // self.layers_per_block](h, m)
        return (self.final_norm(h) * m).transpose(1, 2)  # (B, T, output_dim)
