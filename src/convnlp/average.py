"""`convnlp average`: one checkpoint whose weights are the mean of several.

Averaging the weights of checkpoints from one training trajectory (the ends of a run and of
its resumed continuations, best/ and last/, the ends of cyclic learning-rate phases) usually
gives a model a little better than any of them, at no cost when predicting (Izmailov et al.
2018, "Averaging weights leads to wider optima"; fairseq's ``average_checkpoints.py``). The
checkpoints must be the same model: the same task, encoder, decoder, tokenizer and data config,
the same vocabularies and the same weight shapes. Averaging unrelated runs (different random
initializations) gives a broken model; evaluate the result before using it.

The output is an ordinary checkpoint directory (the first checkpoint's config, tokenizer and
labels, the averaged weights, and a metrics.json naming its sources) for eval and predict.
Nothing is executed from the inputs: weights come from safetensors, the rest from JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from convnlp import checkpoint
from convnlp.errors import UserError
from convnlp.resume import config_difference

log = logging.getLogger(__name__)


def average_checkpoints(directories: list[str | Path], output: str | Path) -> Path:
    """Write the checkpoint with the mean weights of ``directories`` to ``output``."""
    if len(directories) < 2:
        raise UserError(f"checkpoints: give two or more checkpoint directories to average, got {len(directories)}")
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"output={output}: exists and is not an empty directory; choose a new directory")
    ours = checkpoint.load(directories[0])
    model, first = ours.model, checkpoint.existing(directories[0])
    total = {name: value.double() for name, value in model.state_dict().items()}
    for directory in directories[1:]:
        other = checkpoint.load(directory)
        difference = config_difference(ours.config, other.config, names=(f"in {first}", "here"))
        problem = (
            f"another model ({difference})" if difference else checkpoint.vocabulary_difference(first, ours, other)
        )
        if problem:
            raise UserError(f"{directory}: {problem}; only checkpoints of one model can be averaged")
        for name, value in other.model.state_dict().items():  # load() checked names and shapes against the config
            total[name] += value.double()
    count = len(directories)
    averaged = {}
    for name, value in model.state_dict().items():
        # integer buffers (counters) are not averaged: the first checkpoint's are kept
        averaged[name] = (total[name] / count).to(value.dtype) if value.is_floating_point() else value
    model.load_state_dict(averaged)
    sources = [str(checkpoint.existing(d)) for d in directories]
    checkpoint.save(output, model, ours.config, ours.tokenizer, ours.labels, {"averaged": sources})
    log.info("averaged %d checkpoints into %s", count, output)
    return output


def average_command(cfg: DictConfig) -> None:
    if not isinstance(cfg.checkpoints, ListConfig):
        raise UserError(
            f"checkpoints={cfg.checkpoints}: give a list of checkpoint directories, checkpoints=[DIR1,DIR2]"
        )
    output = average_checkpoints([str(d) for d in cfg.checkpoints], str(cfg.output))
    print(json.dumps({"output": str(output), "averaged": len(cfg.checkpoints)}))
