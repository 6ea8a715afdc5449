"""Residual blocks of dilated convolutions (ByteNet, ID-CNN): exponential receptive field."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.encoders.layers import MaskedConv1d, make_activation, make_norm


class DilatedEncoder(nn.Module):
    """A 1-wide input projection, then for each of ``blocks`` repetitions of ``dilations``, one
    pre-norm residual layer ``h = h + dropout(conv_d(activation(norm(h))))``, then a final norm.

    With ``shared=True`` the blocks reuse one set of weights (the iterated dilated CNN of
    Strubell et al. 2017): the same receptive field for fewer parameters.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + blocks * (kernel - 1) * sum(dilations)``.
    """

    def __init__(self, input_dim: int, width: int = 128, kernel: int = 3,
                 dilations: tuple[int, ...] = (1, 2, 4, 8), blocks: int = 2, shared: bool = False,
                 activation: str = "relu", norm: str = "layer", dropout: float = 0.1):
        super().__init__()
        if blocks < 1 or not dilations or min(dilations) < 1:
            raise ValueError(f"need blocks >= 1 and dilations >= 1, got {blocks} and {list(dilations)}")
        self.project = MaskedConv1d(input_dim, width, kernel=1)
        # shared (ID-CNN): one block's layers applied `blocks` times; else separate weights
        distinct = list(dilations) * (1 if shared else blocks)
        self.convs = nn.ModuleList(MaskedConv1d(width, width, kernel, dilation=d) for d in distinct)
        self.norms = nn.ModuleList(make_norm(norm, width) for _ in distinct)
        self.order = [i % len(distinct) for i in range(blocks * len(dilations))]
        self.final_norm = make_norm(norm, width)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.convs[i].receptive_field_growth for i in self.order)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)        # (B, 1, T)
        h = self.project(x.transpose(1, 2), m)  # (B, width, T)
        for i in self.order:
            h = h + self.dropout(self.convs[i](self.activation(self.norms[i](h)), m))
        return (self.final_norm(h) * m).transpose(1, 2)  # (B, T, width)
