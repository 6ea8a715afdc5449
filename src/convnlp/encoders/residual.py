"""Stacked same-length convolutions with identity skip connections (a projection where the
input width differs)."""

from __future__ import annotations

from convnlp.encoders.dilated import DilatedEncoder


class ResidualEncoder(DilatedEncoder):
    """A 1-wide projection to ``width``, then ``layers`` pre-norm residual layers
    ``h = h + dropout(conv(activation(norm(h))))``, then a final norm: the dilated encoder with
    every dilation 1 (same modules, same parameter names, same initialization order).

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + layers * (kernel - 1)``, as for ``plain``: the
    skips keep the gradient, not the reach.
    """

    def __init__(self, input_dim: int, width: int = 128, layers: int = 8, kernel: int = 3,
                 activation: str = "relu", norm: str = "layer", dropout: float = 0.1):
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        super().__init__(input_dim, width=width, kernel=kernel, dilations=(1,) * layers, blocks=1, shared=False,
                         activation=activation, norm=norm, dropout=dropout)
