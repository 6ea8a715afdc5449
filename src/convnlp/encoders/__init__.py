"""Encoder families, one per file, all with one contract:

``forward(x: FloatTensor[B, T, C_in], mask: BoolTensor[B, T]) -> FloatTensor[B, T, output_dim]``,
plus ``output_dim`` and ``receptive_field`` (input positions, exact; ``math.inf`` for the
recurrent baselines). Padding never reaches real positions.

Each file declares its config dataclass and registers its encoder with
``@ENCODERS.register(Config)`` (``convnlp.registry``); its YAML is ``conf/encoder/<name>.yaml``.
Optional declarations: ``at_depth(depth, width, norm) -> Config`` (the family at a given depth,
for ``convnlp inspect gradient_flow=true``) and ``size`` (the setting that sizes the family, for
``convnlp bench``'s matched sizes; ``width`` unless given).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from convnlp.registry import ENCODERS


def build_encoder(cfg, input_dim: int) -> nn.Module:
    """An encoder from its config: the typed dataclass, or a plain dict that names its option
    (``{"name": "dilated", ...}``, e.g. a checkpoint's config.json). The class comes from the
    registry of this package, never from a name or path in the config."""
    if not dataclasses.is_dataclass(cfg):
        cfg = ENCODERS.config(dict(cfg))
    return ENCODERS[cfg.name].target(cfg, input_dim)
