"""The Python API: a trained model in a notebook or a service, without Hydra or a command line.

    import convnlp
    model = convnlp.load("outputs/train/<run>")      # a run (its best/), a checkpoint, or a list: an ensemble
    model.predict(["The cat sat .", "Dogs bark ."])   # one record per text, as `convnlp predict` writes them

The records are those of ``convnlp predict``: tagging ``{"tokens", "tags"}``, classification
``{"text", "label", "probabilities"}``, generation ``{"source", "output", "tokens"}``,
autoencoder ``{"text", "output", "tokens"}`` (the reconstruction); an empty text gets the task's
empty result. An autoencoder also gives codes and the texts between two codes:

    model.encode(["a sentence", "another"])           # (2, code_dim) numpy array
    model.interpolate("a sentence", "another", steps=8, path="line")   # 9 decoded texts

Long inputs are handled as ``predict`` handles them (tagging in overlapping windows,
``task.predict_max_chars``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from convnlp import ensemble
from convnlp.checkpoint import Checkpoint
from convnlp.codes import PATHS
from convnlp.device import pick_device
from convnlp.errors import UserError
from convnlp.onnx_runtime import load_exported
from convnlp.tasks import autoencoder, with_decoding


class Predictor:
    """A loaded checkpoint (or ensemble, or exported model) on its device."""

    def __init__(self, loaded: Checkpoint, device: torch.device):
        self.model, self.config, self.tokenizer, self.labels = (
            loaded.model,
            loaded.config,
            loaded.tokenizer,
            loaded.labels,
        )
        self.device = device
        self.task_name = self.config["task"]["name"]
        self._task, self._task_cfg = loaded.task, loaded.task_cfg
        self.model.eval()

    @property
    def task_config(self) -> dict:
        """The checkpoint's ``task`` group with its ``decoder`` (what the task's functions take)."""
        return self._task_cfg

    def __repr__(self) -> str:
        return (
            f"convnlp.Predictor(task={self.task_name}, encoder={self.config['encoder']['name']}, "
            f"{len(self.labels)} labels, device={self.device})"
        )

    def predict(
        self, texts: str | Iterable[str], batch_size: int = 1024, beam: int | None = None, nbest: int = 0
    ) -> list[dict] | dict:
        """The records of ``texts`` (a list of strings: a list of records; one string: its record),
        ``batch_size`` texts at a time. Generation with an autoregressive decoder: ``beam``, the beam
        width (None: the checkpoint's ``task.beam``); ``nbest``, also the N best outputs of each."""
        one = isinstance(texts, str)
        texts = [texts] if one else list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"predict: texts[{i}] is {type(text).__name__} {text!r:.40}, not a str")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"predict: batch_size={batch_size!r} must be a whole number, at least 1")
        for name, value, least in (("beam", beam, 1), ("nbest", nbest, 0)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise UserError(f"predict: {name}={value!r} must be a whole number, at least {least}")
        task_cfg = with_decoding(self._task_cfg, beam, nbest)
        records = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                inputs = [self._task.read_input(text) for text in texts[start : start + batch_size]]
                records += self._task.predict_records(
                    self.model, self.tokenizer, self.labels, inputs, self.device, task_cfg
                )
        return records[0] if one else records

    def _autoencoder(self, what: str) -> None:
        if self.task_name != "autoencoder":
            raise UserError(f"{what}: codes come from a task=autoencoder checkpoint; this one is task={self.task_name}")
        if not isinstance(self.model, torch.nn.Module):
            raise UserError(f"{what}: an exported model has no code; load the checkpoint with runtime=torch")

    def encode(self, texts: str | Iterable[str], batch_tokens: int = 8000) -> np.ndarray:
        """The code of each text (task=autoencoder; a variational code's mean): an array
        (N, task.code_dim), or (code_dim,) for one string."""
        one = isinstance(texts, str)
        texts = [texts] if one else list(texts)
        self._autoencoder("encode")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"encode: texts[{i}] is {type(text).__name__} {text!r:.40}, not a str")
        with torch.inference_mode():
            mean, _ = autoencoder.posteriors(self.model, self.tokenizer, texts, self.device, batch_tokens)
        codes = mean.numpy()
        return codes[0] if one else codes

    def interpolate(self, a: str, b: str, steps: int = 8, path: str = "line") -> list[dict]:
        """The texts decoded along the codes from ``a``'s to ``b``'s (task=autoencoder): ``steps``
        + 1 records ``{"t", "output", "tokens"}``, ``t`` from 0 (a) to 1 (b); ``path``: ``line``
        or ``slerp`` (the arc)."""
        self._autoencoder("interpolate")
        check_interpolation(a, b, steps, path)
        with torch.inference_mode():
            return autoencoder.interpolate(self.model, self.tokenizer, self.labels, a, b, self.device, steps, path)


def check_interpolation(a, b, steps, path: str) -> None:
    """One line for a missing end point, a bad step count or path."""
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, str) or not value.strip():
            raise UserError(f'interpolate: give two texts, a="..." and b="..." ({name} is {value!r})')
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UserError(f"interpolate: steps={steps!r} must be a whole number, at least 1")
    if path not in PATHS:
        raise UserError(f"interpolate: path={path!r} is not valid; choose one of: {', '.join(PATHS)}")


RUNTIMES = ("torch", "onnx")


def load_model(
    checkpoint, runtime: str = "torch", device: str | torch.device = "auto", threads: int = 0
) -> tuple[Checkpoint, torch.device]:
    """A checkpoint and its device, as ``predict``, ``eval`` and ``load`` run them:
    ``runtime="torch"``: a checkpoint, a run's directory or a list (an ensemble) on ``device``;
    ``runtime="onnx"``: an exported directory (``convnlp export``), by ONNX Runtime on the CPU with
    ``threads`` intra-op threads (0: ONNX Runtime's default)."""
    if runtime not in RUNTIMES:
        raise UserError(f"runtime={runtime!r} is not valid; choose one of: {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        if str(device) not in ("auto", "cpu"):
            raise UserError(
                f"device={device}: runtime=onnx runs on the CPU (ONNX Runtime's CPU provider); "
                "set device=auto or cpu, or runtime=torch"
            )
        return load_exported(checkpoint, threads), torch.device("cpu")
    device = device if isinstance(device, torch.device) else pick_device(str(device))
    return ensemble.load(checkpoint, device), device


def load(
    checkpoint: str | Path | Iterable[str | Path],
    device: str | torch.device = "auto",
    runtime: str = "torch",
    threads: int = 0,
) -> Predictor:
    """A checkpoint directory, a training run's directory (its best/), or a list of them (an
    ensemble: same task, tokenizer and labels), on ``device`` (auto: CUDA where available);
    ``runtime="onnx"``: an exported directory (``convnlp export``), by ONNX Runtime on the CPU.
    ``threads``: CPU threads (ONNX Runtime: this session's; PyTorch: the process's,
    ``torch.set_num_threads``); 0 leaves the runtime's default."""
    if not isinstance(threads, int) or threads < 0:
        raise UserError(f"threads={threads!r} must be a whole number, 0 or more")
    if threads and runtime == "torch":
        torch.set_num_threads(threads)
    paths = str(checkpoint) if isinstance(checkpoint, (str, Path)) else [str(p) for p in checkpoint]
    return Predictor(*load_model(paths, runtime, device, threads))
