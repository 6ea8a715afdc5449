"""One layer of parallel convolutions of several widths, concatenated (Kim 2014's sentence
CNN): shallow and wide, the strong small-data baseline for classification."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.encoders.layers import MaskedConv1d, make_activation, make_norm


class WideEncoder(nn.Module):
    """For each kernel size ``k`` in ``kernels``, ``width`` same-length convolutions of ``k``
    positions; their outputs, each conv -> norm -> activation, are concatenated and dropped out.

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width * len(kernels)]``; masked
    output positions are zero. Receptive field: the widest kernel. With ``task.pooling=max`` this
    is the CNN of Kim (2014): every filter's strongest n-gram match, for n in ``kernels``.
    """

    parallel = True  # its convolutions read the input side by side (for ``convnlp inspect``)

    def __init__(self, input_dim: int, width: int = 100, kernels: list[int] | tuple = (3, 5, 7),
                 activation: str = "relu", norm: str = "none", dropout: float = 0.0):
        super().__init__()
        kernels = list(kernels)
        if not kernels:
            raise ValueError("kernels must name at least one kernel size")
        self.convs = nn.ModuleList(MaskedConv1d(input_dim, width, k) for k in kernels)
        self.norms = nn.ModuleList(make_norm(norm, width) for _ in kernels)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width * len(kernels)

    @property
    def receptive_field(self) -> int:
        return 1 + max(conv.receptive_field_growth for conv in self.convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)             # (B, C_in, T)
        out = torch.cat([self.activation(norm(conv(h, m))) for conv, norm in zip(self.convs, self.norms)], dim=1)
        return (self.dropout(out) * m).transpose(1, 2)  # (B, T, width * len(kernels))
