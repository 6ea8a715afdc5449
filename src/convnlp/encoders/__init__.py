"""Encoder families, one per file, all with one contract:

``forward(x: FloatTensor[B, T, C_in], mask: BoolTensor[B, T]) -> FloatTensor[B, T, output_dim]``,
plus ``output_dim`` and ``receptive_field`` (input positions, exact; ``math.inf`` for the
recurrent baselines). Padding never reaches real positions.
"""

from __future__ import annotations

from torch import nn

from convnlp.encoders.dense import DenseEncoder
from convnlp.encoders.dilated import DilatedEncoder
from convnlp.encoders.plain import PlainEncoder
from convnlp.encoders.recurrent import RecurrentEncoder
from convnlp.encoders.residual import ResidualEncoder
from convnlp.encoders.wide import WideEncoder

ENCODERS: dict[str, type[nn.Module]] = {
    "plain": PlainEncoder,
    "residual": ResidualEncoder,
    "dense": DenseEncoder,
    "dilated": DilatedEncoder,
    "wide": WideEncoder,
    "lstm": RecurrentEncoder,    # bidirectional: false
    "bilstm": RecurrentEncoder,  # bidirectional: true
}


def build_encoder(cfg: dict, input_dim: int) -> nn.Module:
    """An encoder from its config group (a plain dict, e.g. from a checkpoint's config.json).

    The class comes from this fixed table, never from a name or path in the config.
    """
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    for key in ("dilations", "kernels"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return ENCODERS[cfg["name"]](input_dim=input_dim, **kwargs)
