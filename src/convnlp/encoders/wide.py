"""One layer of parallel convolutions of several widths, concatenated (Kim 2014's sentence
CNN): shallow and wide, the strong small-data baseline for classification."""

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
    odd_kernel,
)
from convnlp.registry import ENCODERS, Check, at_least, option


@dataclass
class WideConfig:
    name: str = "wide"
    width: int = option(100, at_least(1), help="filters per kernel size")
    kernels: list[int] = option(
        [3, 5, 7],
        Check(
            lambda v: len(v) >= 1 and all(odd_kernel(k) for k in v),
            "must be a non-empty list of odd numbers (the length is kept)",
        ),
    )
    activation: str = activation_option()
    norm: str = norm_option("none")
    dropout: float = dropout_option(0.0)


@ENCODERS.register(WideConfig)
class WideEncoder(nn.Module):
    """For each kernel size ``k`` in ``kernels``, ``width`` same-length convolutions of ``k``
    positions; their outputs, each conv -> norm -> activation, are concatenated and dropped out.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width * len(kernels)]``; masked
    output positions are zero. Receptive field: the widest kernel. With ``task.pooling=max`` this
    is the CNN of Kim (2014): every filter's strongest n-gram match, for n in ``kernels``.
    """

    parallel = True  # its convolutions read the input side by side (for ``convnlp inspect``)

    def __init__(self, cfg: WideConfig, input_dim: int):
        super().__init__()
        kernels = list(cfg.kernels)
        if not kernels:
            raise ValueError("kernels must name at least one kernel size")
        self.convs = nn.ModuleList(MaskedConv1d(input_dim, cfg.width, k) for k in kernels)
        self.norms = nn.ModuleList(make_norm(cfg.norm, cfg.width) for _ in kernels)
        self.activation = make_activation(cfg.activation)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_dim = cfg.width * len(kernels)

    @property
    def receptive_field(self) -> int:
        return 1 + max(conv.receptive_field_growth for conv in self.convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, C_in, T)
        out = torch.cat([self.activation(norm(conv(h, m))) for conv, norm in zip(self.convs, self.norms)], dim=1)
        return (self.dropout(out) * m).transpose(1, 2)  # (B, T, width * len(kernels))
