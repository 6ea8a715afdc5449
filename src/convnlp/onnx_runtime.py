"""Running an exported model (``convnlp export``) by ONNX Runtime: the session that the tasks'
prediction code calls as it calls a PyTorch model, and the loader of an exported directory
(``predict runtime=onnx``, ``eval runtime=onnx``, ``convnlp.load(DIR, runtime="onnx")``)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import ListConfig

from convnlp import checkpoint
from convnlp.errors import UserError, first_line


class OnnxModel:
    """An ONNX Runtime session that the tasks' prediction code calls as it calls the PyTorch model:
    ``model(batch) -> scores`` (a CPU tensor)."""

    members = task_configs = None  # not an ensemble

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        self.set_threads(threads)
        self.names = [i.name for i in self.session.get_inputs()]

    def set_threads(self, threads: int) -> None:
        """A new session with ``threads`` intra-op threads (0: ONNX Runtime's default, every
        physical core); a session's threads are fixed when it is made."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged or foreign file
            raise UserError(f"{self.path}: not a usable ONNX model ({first_line(e, 200)})") from None
        self.threads = threads

    def eval(self):
        return self

    def __call__(self, batch: dict) -> torch.Tensor:
        missing = [name for name in self.names if name not in batch]
        if missing:
            raise UserError(f"the ONNX model takes {', '.join(missing)}, which this batch lacks")
        feed = {name: batch[name].cpu().numpy() for name in self.names}
        return torch.from_numpy(self.session.run(None, feed)[0])


def load_exported(directory: str | Path, threads: int = 0) -> checkpoint.Checkpoint:
    """An exported directory (model.onnx), checked as a checkpoint is; its model an ``OnnxModel``."""
    if isinstance(directory, (list, tuple, ListConfig)):
        raise UserError("runtime=onnx runs one exported model, not an ensemble: give one directory")
    directory = Path(str(directory))
    if not (directory / "model.onnx").is_file() and (directory / "onnx" / "model.onnx").is_file():
        directory = directory / "onnx"  # a training run's directory, exported to its onnx/
    if directory.is_dir() and not (directory / "model.onnx").is_file():
        exported = sorted(directory.glob("*/model.onnx")) + sorted(directory.parent.glob("onnx*/model.onnx"))
        raise UserError(
            f"{directory}: no model.onnx here; runtime=onnx runs an exported model: "
            + (f"give {exported[0].parent}" if exported else f"convnlp export checkpoint={directory} writes one")
        )
    loaded = checkpoint.read(directory, ("model.onnx", "config.json", "tokenizer.json", "labels.json"))
    loaded.model = OnnxModel(loaded.directory / "model.onnx", threads)
    return loaded
