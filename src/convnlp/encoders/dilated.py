"""Residual blocks of dilated convolutions (ByteNet, ID-CNN): exponential receptive field."""

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
class DilatedConfig:
    name: str = "dilated"
    width: int = option(128, at_least(1), help="channels of every layer")
    kernel: int = option(3, odd())
    dilations: list[int] = option(
        [1, 2, 4, 8],
        Check(lambda v: len(v) >= 1 and min(v) >= 1, "must be a non-empty list of numbers >= 1"),
        help="one residual conv layer per dilation",
    )
    blocks: int = option(2, at_least(1), help="the dilation schedule is repeated this many times")
    shared: bool = option(False, help="true: the blocks share one set of weights (ID-CNN)")
    activation: str = activation_option()
    norm: str = norm_option()
    dropout: float = dropout_option(0.1)


def at_depth(depth: int, width: int, norm: str) -> DilatedConfig:
    """``depth`` kernel-wide layers: 1-2-4-8 per block (``convnlp inspect gradient_flow=true``)."""
    per_block = min(depth, 4)
    return DilatedConfig(
        width=width, dilations=[2**i for i in range(per_block)], blocks=depth // per_block, norm=norm, dropout=0.0
    )


@ENCODERS.register(DilatedConfig, at_depth=at_depth)
class DilatedEncoder(nn.Module):
    """A 1-wide input projection, then for each of ``blocks`` repetitions of ``dilations``, one
    pre-norm residual layer ``h = h + dropout(conv_d(activation(norm(h))))``, then a final norm.

    With ``shared=True`` the blocks reuse one set of weights (the iterated dilated CNN of
    Strubell et al. 2017): the same receptive field for fewer parameters.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + blocks * (kernel - 1) * sum(dilations)``.
    """

    def __init__(self, cfg: DilatedConfig, input_dim: int):
        super().__init__()
        if cfg.blocks < 1 or not cfg.dilations or min(cfg.dilations) < 1:
            raise ValueError(f"need blocks >= 1 and dilations >= 1, got {cfg.blocks} and {list(cfg.dilations)}")
        width = cfg.width
        self.project = MaskedConv1d(input_dim, width, kernel=1)
        # shared (ID-CNN): one block's layers applied `blocks` times; else separate weights
        distinct = list(cfg.dilations) * (1 if cfg.shared else cfg.blocks)
        self.convs = nn.ModuleList(MaskedConv1d(width, width, cfg.kernel, dilation=d) for d in distinct)
        self.norms = nn.ModuleList(make_norm(cfg.norm, width) for _ in distinct)
        self.order = [i % len(distinct) for i in range(cfg.blocks * len(cfg.dilations))]
        self.final_norm = make_norm(cfg.norm, width)
        self.activation = make_activation(cfg.activation)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_dim = width

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.convs[i].receptive_field_growth for i in self.order)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = self.project(x.transpose(1, 2), m)  # (B, width, T)
        for i in self.order:
            h = h + self.dropout(self.convs[i](self.activation(self.norms[i](h)), m))
        return (self.final_norm(h) * m).transpose(1, 2)  # (B, T, width)
