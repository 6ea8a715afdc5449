"""Stacked same-length convolutions with identity skip connections (a projection where the
input width differs)."""

from __future__ import annotations

from dataclasses import dataclass

from convnlp.encoders.dilated import DilatedConfig, DilatedEncoder
from convnlp.encoders.layers import activation_option, dropout_option, norm_option
from convnlp.registry import ENCODERS, at_least, odd, option


@dataclass
class ResidualConfig:
    name: str = "residual"
    width: int = option(128, at_least(1), help="channels of every layer")
    layers: int = option(8, at_least(1))
    kernel: int = option(3, odd())
    activation: str = activation_option()
    norm: str = norm_option()
    dropout: float = dropout_option(0.1)


def at_depth(depth: int, width: int, norm: str) -> ResidualConfig:
    return ResidualConfig(width=width, layers=depth, norm=norm, dropout=0.0)


@ENCODERS.register(ResidualConfig, at_depth=at_depth)
def residual_encoder(cfg: ResidualConfig, input_dim: int) -> DilatedEncoder:
    """A 1-wide projection to ``width``, then ``layers`` pre-norm residual layers
    ``h = h + dropout(conv(activation(norm(h))))``, then a final norm: the dilated encoder with
    every dilation 1 (same modules, same parameter names, same initialization order).

    Contract: ``forward(x[B, T, input_dim], mask[B, T]) -> [B, T, width]``; masked output
    positions are zero. Receptive field: ``1 + layers * (kernel - 1)``, as for ``plain``: the
    skips keep the gradient, not the reach.
    """
    if cfg.layers < 1:
        raise ValueError(f"layers must be at least 1, got {cfg.layers}")
    return DilatedEncoder(
        DilatedConfig(
            width=cfg.width,
            kernel=cfg.kernel,
            dilations=[1] * cfg.layers,
            blocks=1,
            shared=False,
            activation=cfg.activation,
            norm=cfg.norm,
            dropout=cfg.dropout,
        ),
        input_dim,
    )
