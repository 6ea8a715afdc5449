"""Decoders for generation: they turn the encoder's output into a fixed number of output
positions, each scored over the target vocabulary. One family so far, ``deconv``."""

from __future__ import annotations

import torch
from torch import nn

from convnlp.decoders import deconv
from convnlp.decoders.deconv import DeconvDecoder, transposed_length, upsampling_plan

DECODERS: dict[str, type[nn.Module]] = {"deconv": DeconvDecoder}


def build_decoder(cfg: dict, input_dim: int, num_labels: int) -> nn.Module:
    """A decoder from its config group (a plain dict); the class comes from this fixed table."""
    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "too_long")}
    return DECODERS[cfg["name"]](input_dim=input_dim, num_labels=num_labels, **kwargs)


def output_lengths(cfg: dict, source_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) output positions the decoder ``cfg`` gives sources of these lengths (in symbols)."""
    return deconv.output_lengths(source_lengths, cfg.get("output_length", "fixed"), cfg["max_length"],
                                 cfg.get("length_ratio", 2), cfg.get("length_extra", 6))


__all__ = ["DECODERS", "DeconvDecoder", "build_decoder", "output_lengths", "transposed_length",
           "upsampling_plan"]
