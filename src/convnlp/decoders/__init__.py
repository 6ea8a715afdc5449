"""Decoders for generation: they turn the encoder's output into output positions, each scored
over the target vocabulary: in one parallel pass (``deconv``), or one position after the other
from the prefix before it (``autoregressive``: ``convs2s``, ``lstm``, decoded by ``search``). Each file declares its config dataclass and registers its decoder
with ``@DECODERS.register(Config)`` (``convnlp.registry``); its YAML is
``conf/decoder/<name>.yaml``. A decoder's constructor is ``Decoder(cfg, input_dim, num_labels)``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from convnlp.decoders import autoregressive
from convnlp.decoders.deconv import output_lengths as deconv_output_lengths
from convnlp.registry import DECODERS


def build_decoder(cfg, input_dim: int, num_labels: int) -> nn.Module:
    """A decoder from its config (the typed dataclass, or a plain dict that names its option);
    the class comes from the registry of this package."""
    if not dataclasses.is_dataclass(cfg):
        cfg = DECODERS.config(dict(cfg))
    return DECODERS[cfg.name].target(cfg, input_dim, num_labels)


def is_autoregressive(cfg: dict) -> bool:
    """Whether the decoder of config ``cfg`` (a plain dict) decodes one position after the other."""
    return bool(getattr(DECODERS[cfg["name"]].target, "autoregressive", False))


def output_lengths(cfg: dict, source_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) output positions the decoder ``cfg`` gives sources of these lengths (in symbols): an
    autoregressive decoder's at most (it stops at the end symbol)."""
    if is_autoregressive(cfg):
        return autoregressive.output_lengths(cfg, source_lengths)
    return deconv_output_lengths(
        source_lengths, cfg["output_length"], cfg["max_length"], cfg["length_ratio"], cfg["length_extra"]
    )
