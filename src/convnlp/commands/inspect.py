"""`convnlp inspect`: an encoder's (and decoder's) layers, receptive field, parameters and FLOPs,
and optionally its effective receptive field and gradient flow (conf/inspect.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from convnlp.commands.eval import BATCH
from convnlp.registry import COMMANDS, ENCODERS, Check, option


def _families(v) -> bool:
    deep = [e.name for e in ENCODERS.entries() if "at_depth" in e.info]
    return len(v) >= 1 and set(v) <= set(deep)


@dataclass
class InspectCommand:
    checkpoint: Optional[str] = option(None, help="inspect a trained model instead of the configured one")
    effective_rf: bool = option(False, help="measure the effective receptive field (gradients)")
    gradient_flow: bool = option(False, help="measure the first layer's gradient over the last one's, by depth")
    families: list[str] = option(
        ["plain", "residual", "dense", "dilated"],
        Check(
            _families,
            "must list encoder families that can be built at any depth "
            "(convolutional ones): plain, residual, dense, dilated, ...",
        ),
    )
    depths: list[int] = option(
        [4, 8, 16, 32],
        Check(
            lambda v: len(v) >= 1 and all(isinstance(d, int) and d >= 4 and d % 4 == 0 for d in v),
            "must be a list of multiples of 4 (the dilated schedule is 1-2-4-8 per block)",
        ),
    )
    width: int = 64
    norm: str = option("none", choices=("layer", "none"), help="gradient_flow: with or without LayerNorm")
    length: int = option(256, BATCH, help="positions of the measured inputs")
    samples: int = option(16, BATCH, help="random inputs averaged for the effective receptive field")
    source_symbols: int = option(
        10, BATCH, help="autoregressive decoders: the source length their attention FLOPs per symbol are given for"
    )
    seed: int = 0


@COMMANDS.register(
    InspectCommand,
    name="inspect",
    order=4,
    run_dir=True,
    summary="layers, receptive field",
    groups=("task", "encoder", "decoder"),
    examples=(
        "convnlp inspect encoder=dilated effective_rf=true gradient_flow=true",
        "convnlp inspect task=generation decoder=convs2s",
    ),
)
def run(cfg: DictConfig, run_dir: Path, given: set[str]):
    # imported when it runs: `convnlp --help` does not load torch
    from convnlp.inspect import inspect_command

    inspect_command(cfg, run_dir)
