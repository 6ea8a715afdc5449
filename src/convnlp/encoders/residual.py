"""Stacked same-length convolutions with identity skip connections (a projection where the
input width differs)."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.encoders.layers import MaskedConv1d, make_activation, make_norm


class ResidualEncoder(nn.Module):
    """A 1-wide projection to ``width``, then ``layers`` pre-norm residual layers
    ``h = h + dropout(conv(activation(norm(h))))``, then a final norm.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + layers * (kernel - 1)``, as for ``plain``: the
    skips keep the gradient, not the reach.
    """

    def __init__(self, input_dim: int, width: int = 128, layers: int = 8, kernel: int = 3,
                 activation: str = "relu", norm: str = "layer", dropout: float = 0.1):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.project = MaskedConv1d(input_dim, width, kernel=1)
        self.convs = nn.ModuleList(MaskedConv1d(width, width, kernel) for _ in range(layers))
        self.norms = nn.ModuleList(make_norm(norm, width) for _ in range(layers))
        self.final_norm = make_norm(norm, width)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.receptive_field_growth for conv in self.convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)        # (B, 1, T)
        h = self.project(x.transpose(1, 2), m)  # (B, width, T)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(conv(self.activation(norm(h)), m))
        return (self.final_norm(h) * m).transpose(1, 2)  # (B, T, width)
