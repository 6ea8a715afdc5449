"""What the autoregressive decoders (``convs2s``, ``lstm``) share: the contract the search
(``convnlp.decoders.search``) steps them by, their common options, and attention.

An autoregressive decoder scores the next target symbol from the encoder output and the target
prefix. Its input at position t is the symbol at t - 1, and the end symbol ``</s>`` at position 0
(the target vocabulary has no separate start symbol: ``</s>`` starts and ends a sequence, as in
fairseq). The contract:

    forward(h[B, T, C], mask[B, T], batch) -> logits[B, S, V]   teacher forcing: every position of
                                                                batch["target"] (S symbols, </s>
                                                                included) from the true prefix
    start(h, mask) -> state                   what decoding a source needs: the encoder output
                                              projected for attention, empty caches (a dict of
                                              tensors, or lists of them, batch first)
    step(state, tokens[N], t) -> logits[N, V] the scores of position t given the symbol at t - 1;
                                              ``state``'s caches grow by that position, nothing
                                              of the prefix is computed again
    reorder(state, index[N'], expand)         the state of rows ``index`` (beam search); with
                                              ``expand`` false the rows stay within their source,
                                              whose projected encoder output ("memory") is the
                                              same in every row, so it is not copied

A source of n symbols gets at most ``min(length_ratio * n + length_extra, max_length)`` output
positions (``output_lengths``), the end symbol included: the rule training targets are checked
against (``decoder.too_long``), so it always covers the training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from convnlp.registry import at_least, fraction, option

END = 1  # the end symbol (tasks/generation.py: <pad>, </s>, <blank>): it starts every target prefix


@dataclass
class AutoregressiveOptions:
    """The settings every autoregressive decoder has (its config dataclass extends this one):
    the loss's label smoothing and the length rule that training and decoding share."""

    label_smoothing: float = option(0.1, fraction(), help="label smoothing of the cross-entropy (0: none)")
    max_length: int = option(64, at_least(2), help="output positions at most, the end symbol included")
    source_length: int = option(256, at_least(1), help="longest source in symbols (longer ones get an error)")
    length_ratio: int = option(
        2, at_least(1), help="a source of n symbols: at most length_ratio x n + length_extra outputs"
    )
    length_extra: int = option(10, at_least(1, "room for the end symbol"))
    too_long: str = option(
        "error", choices=("error", "filter"), help="a training target longer than the decoder allows: error | filter"
    )


def output_lengths(cfg: dict, source_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) output positions at most (the end symbol included) for sources of these lengths."""
    return (source_lengths * cfg["length_ratio"] + cfg["length_extra"]).clamp(max=cfg["max_length"])


def shift_right(target: torch.Tensor) -> torch.Tensor:
    """The decoder's inputs for teacher forcing: ``</s>``, then the target without its last symbol."""
    return torch.cat([target.new_full((target.shape[0], 1), END), target[:, :-1]], dim=1)


def reorder_state(state: dict, index: torch.Tensor, expand: bool = True) -> dict:
    """A decoder's state at the rows ``index``; its ``memory`` (the same in all rows of a source)
    only when ``expand``, the rows being repeated or moved across sources."""
    return {k: v if k == "memory" and not expand else reorder(v, index) for k, v in state.items()}


def reorder(state, index: torch.Tensor):
    """``state`` (tensors, lists and dicts of them, batch first) at the rows ``index``."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {k: reorder(v, index) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder(v, index) for v in state)
    return state


class Attention(nn.Module):
    """Scaled dot-product attention from decoder positions to the encoder output: ``memory``
    projects the encoder output once per source to keys and values; ``forward`` attends."""

    def __init__(self, input_dim: int, width: int):
        super().__init__()
        self.keys = nn.Linear(input_dim, width)
        self.values = nn.Linear(input_dim, width)
        self.scale = 1 / math.sqrt(width)

    def memory(self, h: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"keys": self.keys(h), "values": self.values(h), "mask": mask}

    def forward(self, query: torch.Tensor, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        """``query`` (B, S, W) -> the attended values (B, S, W); padding positions get no weight."""
        scores = torch.bmm(query, memory["keys"].transpose(1, 2)) * self.scale  # (B, S, T)
        scores = scores.masked_fill(~memory["mask"][:, None, :], float("-inf"))
        weights = F.softmax(scores.float(), dim=-1).to(query.dtype)
        return torch.bmm(weights.nan_to_num(0.0), memory["values"])  # an empty source: no weight anywhere
