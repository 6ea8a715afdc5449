"""Stacked same-length convolutions without skip connections (the baseline CNN)."""

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
from convnlp.registry import ENCODERS, at_least, odd, option


@dataclass
class PlainConfig:
    name: str = "plain"
    width: int = option(128, at_least(1), help="channels of every layer")
    layers: int = option(4, at_least(1))
    kernel: int = option(3, odd())
    activation: str = activation_option()
    norm: str = norm_option()
    dropout: float = dropout_option(0.1)


def at_depth(depth: int, width: int, norm: str) -> PlainConfig:
    return PlainConfig(width=width, layers=depth, norm=norm, dropout=0.0)


@ENCODERS.register(PlainConfig, at_depth=at_depth)
class PlainEncoder(nn.Module):
    """``layers`` convolutions, each conv -> norm -> activation -> dropout.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + layers * (kernel - 1)`` input positions.
    """

    def __init__(self, cfg: PlainConfig, input_dim: int):
        super().__init__()
        if cfg.layers < 1:
            raise ValueError(f"layers must be at least 1, got {cfg.layers}")
        width = cfg.width
        self.convs = nn.ModuleList(
            MaskedConv1d(input_dim if i == 0 else width, width, cfg.kernel) for i in range(cfg.layers)
        )
        self.norms = nn.ModuleList(make_norm(cfg.norm, width) for _ in range(cfg.layers))
        self.activation = make_activation(cfg.activation)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_dim = width

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.receptive_field_growth for conv in self.convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, C_in, T)
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(self.activation(norm(conv(h, m))))
        return (h * m).transpose(1, 2)  # (B, T, width)
