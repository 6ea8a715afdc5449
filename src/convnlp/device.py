"""The device a command runs on: ``auto`` is CUDA where available, else the CPU."""

from __future__ import annotations

import torch

from convnlp.errors import UserError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is available")
    return torch.device(name)
