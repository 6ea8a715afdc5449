"""Stacked same-length convolutions without skip connections (the baseline CNN)."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.encoders.layers import MaskedConv1d, make_activation, make_norm


class PlainEncoder(nn.Module):
    """``layers`` convolutions, each conv -> norm -> activation -> dropout.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + layers * (kernel - 1)`` input positions.
    """

    def __init__(self, input_dim: int, width: int = 128, layers: int = 4, kernel: int = 3,
                 activation: str = "relu", norm: str = "layer", dropout: float = 0.1):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.convs = nn.ModuleList(
            MaskedConv1d(input_dim if i == 0 else width, width, kernel) for i in range(layers)
        )
        self.norms = nn.ModuleList(make_norm(norm, width) for _ in range(layers))
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.receptive_field_growth for conv in self.convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)             # (B, C_in, T)
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(self.activation(norm(conv(h, m))))
        return (h * m).transpose(1, 2)    # (B, T, width)
