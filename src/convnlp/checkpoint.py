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
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from convnlp.config import validate, with_earlier_defaults
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.model import Model, build_model
from convnlp.tasks import Task, get_task, task_config

REQUIRED = ("model.safetensors", "config.json", "tokenizer.json", "labels.json")


@dataclass
class Checkpoint:
    """A trained model and what predicting with it needs: its run config, tokenizer and label
    vocabulary (``load``; an ensemble's, ``ensemble.load``; an exported model's, with an ONNX
    Runtime session as ``model``)."""

    model: nn.Module
    config: dict
    tokenizer: tok.Tokenizer
    labels: list[str]
    directory: Path | None = None

    @property
    def task(self) -> Task:
        return get_task(self.config["task"]["name"])

    @property
    def task_cfg(self) -> dict:
        """The ``task`` group with its ``decoder`` (what the task's functions take)."""
        return task_config(self.config)


def git_revision() -> str | None:
    """The commit of the code that wrote a checkpoint (its metrics.json records it), if known."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def save(
    directory: Path,
    model: Model,
    config: dict,
    tokenizer,
    labels: list[str],
    metrics: dict,
    training_state: dict | None = None,
) -> None:
    """Write a checkpoint directory; a write that fails (disk full, file size limit, read-only
    directory) raises a one-line UserError and leaves the previous checkpoint as it was."""

    def write(tmp: Path) -> None:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tok.save(tokenizer, tmp / "tokenizer.json")
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if training_state is not None:
            torch.save(training_state, tmp / "training_state.pt")

    _write_atomically(Path(directory), write)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_writes(run_dir: Path) -> None:
    """Remove what a process killed during a checkpoint write left in its run directory
    (``.last.tmp-*``); ``.last.old`` stays, as ``existing`` may still need it."""
    for stale in Path(run_dir).glob(".*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def copy(source: Path, directory: Path) -> None:
    """Copy a checkpoint directory, as atomically as ``save`` writes one."""
    _write_atomically(Path(directory), lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True))


def _write_atomically(directory: Path, write) -> None:
    """``write(tmp)`` fills a temporary sibling directory, which then replaces ``directory``
    by renames: a killed process leaves either the old or the new checkpoint under its name (or,
    for a moment, the old one as ``.<name>.old``, which ``existing`` finds)."""
    tmp = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is an ordinary directory
        write(tmp)
        for path in tmp.iterdir():  # on disk before the rename: a power cut leaves no half-written file
            _fsync(path)
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync(directory.parent)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise UserError(
            f"cannot write the checkpoint {directory} ({e.strerror or e}); the previous one, if any, is kept"
        ) from None
    except (RuntimeError, SafetensorError) as e:  # torch.save and safetensors wrap the OS error in their own
        raise UserError(
            f"cannot write the checkpoint {directory} ({str(e).splitlines()[0]}); the previous one, if any, is kept"
        ) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def mark_finished(directory: Path) -> None:
    """Set ``finished`` in a checkpoint's metrics.json."""
    path = Path(directory) / "metrics.json"
    write_json(path, {**_read_json(path), "finished": True})


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None


def write_json(path: Path, value) -> None:
    """Replace a JSON file whole (a rename, so a reader never sees half of it); a write that
    fails is one UserError line."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(value, indent=2))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({e.strerror or e})") from None


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


# The keys of a run config (config.json); anything else is refused, not ignored.
CONFIG_KEYS = ("task", "encoder", "decoder", "data", "tokenizer", "trainer", "optim", "seed")
# Hydra's instantiation keys: a checkpoint never names code to run.
INSTANTIATION_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def _untrusted_value(value, where: str = "") -> str | None:
    """Why a value of a checkpoint's config.json is refused, or None: a class path to
    instantiate, or an interpolation (``${oc.env:HOME}``) to resolve; both run or read more than
    the file holds."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if key in INSTANTIATION_KEYS:
                return f"{name}: names code to instantiate; a checkpoint's config holds plain values only"
            problem = _untrusted_value(item, name)
            if problem:
                return problem
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problem = _untrusted_value(item, f"{where}[{i}]")
            if problem:
                return problem
    elif isinstance(value, str) and "${" in value:
        return f"{where}: {value!r} is an interpolation; a checkpoint's config holds plain values only"
    elif value == "???":  # OmegaConf's mark of a missing value: the schema's default would fill it in
        return f"{where}: '???' (a missing value); a checkpoint's config holds every value"
    return None


def _check_config(config) -> None:
    if not isinstance(config, dict):
        raise UserError(f"expected a JSON object, found {type(config).__name__}")
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise UserError(f"unknown top-level key {unknown[0]!r}; a run config holds: {', '.join(CONFIG_KEYS)}")
    for group in ("task", "encoder"):
        if not isinstance(config.get(group), dict):
            raise UserError(f"no {group} group")
    for group in CONFIG_KEYS:
        if (
            group in config
            and group != "seed"
            and not isinstance(config[group], dict)
            and not (group == "decoder" and config[group] is None)
        ):
            raise UserError(f"{group}: expected a group of settings, found {type(config[group]).__name__}")
    if not isinstance(config.get("seed", 0), int):
        raise UserError(f"seed: expected a whole number, found {config['seed']!r}")
    problem = _untrusted_value(config)
    if problem:
        raise UserError(problem)


def _check_labels(labels) -> None:
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise UserError("expected a non-empty JSON list of label strings")
    if len(set(labels)) != len(labels):
        raise UserError("a label appears twice")


def weights_difference(expected: dict, weights: dict) -> str | None:
    """The first way saved weights differ from the model a config builds, or None; says which
    file disagrees where it can tell (the embedding: tokenizer.json; the output layer: labels.json)."""
    missing = [k for k in expected if k not in weights]
    if missing:
        return f"the config's model has a tensor {missing[0]!r} the weights lack ({len(missing)} missing)"
    unexpected = [k for k in weights if k not in expected]
    if unexpected:
        return f"the weights hold a tensor {unexpected[0]!r} the config's model lacks ({len(unexpected)} extra)"
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            hint = " (its rows: the tokenizer's vocabulary size)" if key == "embedding.weight" else ""
            return (
                f"{key!r} has shape {tuple(weights[key].shape)} in the weights, {tuple(tensor.shape)} from "
                f"config.json, tokenizer.json and labels.json{hint}"
            )
        if not weights[key].dtype.is_floating_point and tensor.dtype.is_floating_point:
            return f"{key!r} holds {weights[key].dtype}, not floating-point numbers"
    return None


def read(directory: str | Path, required: tuple[str, ...] = REQUIRED) -> Checkpoint:
    """A checkpoint directory, checked, with its model built (its weights not loaded): the
    config names no code (no class paths, no interpolations, no unknown keys), and the model
    comes from the registries of tasks and encoders. ``required``: the files it must hold (an
    exported directory: model.onnx)."""
    directory = existing(directory)
    for name in required:
        if not (directory / name).is_file():
            if name == "model.safetensors" and (directory / "model.onnx").is_file():
                raise UserError(
                    f"{directory}: an exported ONNX model (model.onnx), not a PyTorch checkpoint; run it "
                    "with runtime=onnx"
                )
            raise UserError(f"{directory}: checkpoint is missing {name}")
    config = _read_json(directory / "config.json")
    labels = _read_json(directory / "labels.json")
    for name, check, value in (("config.json", _check_config, config), ("labels.json", _check_labels, labels)):
        try:
            check(value)
        except UserError as e:
            raise UserError(f"{directory / name}: {e}") from None
    tokenizer = tok.load(directory / "tokenizer.json")
    try:  # the model groups pass the same type, choice and range checks as on the command line
        config = with_earlier_defaults(config)
        checked = validate(
            OmegaConf.create({g: config[g] for g in ("task", "encoder", "decoder") if g in config}),
            ("task", "encoder", "decoder"),
        )
        for group in ("task", "encoder", "decoder"):
            if config.get(group) is not None:
                config[group] = OmegaConf.to_container(checked[group])
        model = build_model(task_config(config), config["encoder"], tokenizer.get_vocab_size(), len(labels))
    except UserError as e:
        raise UserError(f"{directory}/config.json: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{directory}/config.json: not a usable model config ({str(e).splitlines()[0]})") from None
    return Checkpoint(model, config, tokenizer, labels, directory)


def load(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """A checkpoint directory, its weights loaded, its model on ``device``. Executes nothing from
    it: see ``read``; the weights are safetensors."""
    loaded = read(directory)
    directory, model = loaded.directory, loaded.model
    try:
        weights = load_file(directory / "model.safetensors", device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(
            f"{directory}/model.safetensors: damaged or not a safetensors file ({str(e).splitlines()[0]})"
        ) from None
    difference = weights_difference(model.state_dict(), weights)
    if difference:
        raise UserError(f"{directory}/model.safetensors: does not match the checkpoint's model: {difference}")
    model.load_state_dict(weights)
    loaded.model = model.to(device)
    return loaded


def vocabulary_difference(first, ours: Checkpoint, theirs: Checkpoint) -> str | None:
    """Why another checkpoint's labels or tokenizer differ from those of checkpoint ``first``
    (``ours``), or None (checkpoints that predict together or are averaged need the same ones)."""
    if theirs.labels != ours.labels:
        return f"its labels differ from those of {first}"
    if theirs.tokenizer.to_str() != ours.tokenizer.to_str():
        return f"its tokenizer differs from that of {first}"
    return None


# What training_state.pt must hold, and of which type (train.py writes it).
TRAINING_STATE = {
    "optimizer": dict,
    "step": int,
    "epoch": int,
    "batch_in_epoch": int,
    "best_score": float,
    "best_step": int,
    "bad_evals": int,
    "elapsed": float,
    "torch_rng": torch.Tensor,
    "python_rng": tuple,
    "cuda_rng": list,
    "scaler": dict,
}


def load_training_state(directory: Path) -> dict:
    path = Path(directory) / "training_state.pt"
    if not path.is_file():
        raise UserError(f"{directory}: no training_state.pt, cannot resume from it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: torch raises several error types
        raise UserError(f"{path}: cannot read the training state ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a training state (a {type(state).__name__}, not a dict)")
    for key, kind in TRAINING_STATE.items():
        value = state.get(key)
        if not isinstance(value, kind) and not (kind is float and isinstance(value, int)):
            raise UserError(
                f"{path}: not a training state of this version ({key!r} is "
                f"{type(value).__name__ if key in state else 'missing'}, expected {kind.__name__})"
            )
    return state
