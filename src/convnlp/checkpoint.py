"""Checkpoints: a directory that alone is enough to predict.

    model.safetensors   weights (safetensors: loading runs no code)
    config.json         the resolved run config (task, encoder, data, tokenizer, trainer, optim)
    tokenizer.json      the HF tokenizers vocabulary
    labels.json         the label vocabulary, in model output order
    metrics.json        metrics at the time of saving
    training_state.pt   last/ only: optimizer, scheduler, step, RNG, and with trainer.ema the
                        trained weights (model.safetensors holds their average) (torch.load weights_only=True)

A checkpoint is written into a temporary sibling directory and renamed into place, so a
killed run never leaves a half-written directory under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.model import Model, build_model

REQUIRED = ("model.safetensors", "config.json", "tokenizer.json", "labels.json")


def save(directory: Path, model: Model, config: dict, tokenizer, labels: list[str],
         metrics: dict, training_state: dict | None = None) -> None:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is an ordinary directory
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tok.save(tokenizer, tmp / "tokenizer.json")
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if training_state is not None:
            torch.save(training_state, tmp / "training_state.pt")
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def existing(directory: str | Path) -> Path:
    """The checkpoint directory, or the previous version a save was replacing when it was killed;
    for a run directory (no config.json, a best/ inside), its best/."""
    directory = Path(directory)
    if not (directory / "config.json").is_file() and (directory / "best").is_dir():
        directory = directory / "best"
    old = directory.with_name(f".{directory.name}.old")
    if not directory.is_dir() and old.is_dir():
        return old
    if not directory.is_dir():
        raise UserError(f"{directory}: checkpoint directory not found")
    return directory


def load(directory: str | Path, device: str | torch.device = "cpu"):
    """(model, config, tokenizer, labels) from a checkpoint directory. Executes nothing from it."""
    from convnlp.config import validate_group
    from convnlp.tasks import task_config

    directory = existing(directory)
    for name in REQUIRED:
        if not (directory / name).is_file():
            raise UserError(f"{directory}: checkpoint is missing {name}")
    config = _read_json(directory / "config.json")
    labels = _read_json(directory / "labels.json")
    tokenizer = tok.load(directory / "tokenizer.json")
    try:  # the task and encoder configs pass the same checks as on the command line
        for group in ("task", "encoder", "decoder"):
            if group != "decoder" or config.get(group) is not None:
                config[group] = OmegaConf.to_container(validate_group(group, OmegaConf.create(config[group])))
        model = build_model(task_config(config), config["encoder"], tokenizer.get_vocab_size(), len(labels))
    except (UserError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{directory}/config.json: not a usable model config ({str(e).splitlines()[0]})") from None
    try:
        model.load_state_dict(load_file(directory / "model.safetensors", device="cpu"))
    except Exception as e:  # safetensors raises its own error type for damaged files
        raise UserError(f"{directory}/model.safetensors: does not match the checkpoint's config "
                        f"({str(e).splitlines()[0]})") from None
    return model.to(device), config, tokenizer, labels


def vocabulary_difference(first, labels: list[str], tokenizer, other_labels: list[str], other_tokenizer) -> str | None:
    """Why another checkpoint's labels or tokenizer differ from those of checkpoint ``first``, or None
    (checkpoints that predict together or are averaged need the same ones)."""
    if other_labels != labels:
        return f"its labels differ from those of {first}"
    if other_tokenizer.to_str() != tokenizer.to_str():
        return f"its tokenizer differs from that of {first}"
    return None


def load_training_state(directory: Path) -> dict:
    path = Path(directory) / "training_state.pt"
    if not path.is_file():
        raise UserError(f"{directory}: no training_state.pt, cannot resume from it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: torch raises several error types
        raise UserError(f"{path}: cannot read the training state ({str(e).splitlines()[0]})") from None
