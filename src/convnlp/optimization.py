"""The optimizer's schedule and the moving average of the weights (``optim`` and
``trainer.ema``): what the training loop asks at every step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from convnlp.registry import OPTIMIZERS, Check, option, positive, zero_or_more


@dataclass
class AdamwConfig:
    name: str = "adamw"
    lr: float = option(2e-3, positive(), help="the peak learning rate (not scaled with the global batch)")
    weight_decay: float = option(0.01, zero_or_more())
    betas: list[float] = option(
        [0.9, 0.98], Check(lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "must be two numbers in [0, 1)")
    )
    warmup_steps: int = option(200, zero_or_more(), help="linear warmup from 0")
    schedule: str = option(
        "linear",
        choices=("linear", "cosine", "constant"),
        help="the decay after warmup, over the planned steps or the time budget",
    )


OPTIMIZERS.add(AdamwConfig)


def lr_factor(step: int, progress: float, warmup: int, schedule: str) -> float:
    """Linear warmup over ``warmup`` steps, then decay to 0 as ``progress`` (the fraction of
    the budget after warmup that is used up) goes from 0 to 1."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress


def ema_average(decay: float):
    """``avg_fn`` of torch's AveragedModel for ``trainer.ema``: the running mean of the weights
    until 1 / (1 - decay) of them are in, then an exponential moving average, so that a short run
    is not evaluated on an average of its first, untrained weights."""

    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        rate = torch.clamp(1.0 / (n + 1), min=1.0 - decay)  # n: weights averaged so far
        return averaged + (current - averaged) * rate

    return average


def moving_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """``trainer.ema``: an averaged copy of ``model`` (what is evaluated and saved), or None (0)."""
    if not decay:
        return None
    ema = AveragedModel(model, avg_fn=ema_average(decay), use_buffers=True)
    for module in ema.module.modules():  # the copy's LSTM weights are no longer one cuDNN block
        if isinstance(module, nn.RNNBase):
            module.flatten_parameters()
    return ema


def adamw(model: nn.Module, optim) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
