"""`convnlp export checkpoint=DIR format=onnx [output=DIR]`, and the ONNX Runtime model that
`convnlp predict runtime=onnx` and `convnlp.load(DIR, runtime="onnx")` run.

An exported directory serves alone: ``model.onnx`` (opset ``OPSET``, dynamic batch and length
axes) beside the checkpoint's ``tokenizer.json``, ``labels.json`` and ``config.json``, and
``export.json`` (versions, the graph's inputs, the check at export time). Only the network is in
the graph: its inputs are the tensors of one batch as the task's prediction code builds it
(symbol ids and masks, word positions for tagging), its output the task-shaped scores. The text
around it (tokenizing, windows over long sentences, decoding) is the same Python code for both
runtimes, so their records can only differ by the scores' float rounding.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig

from convnlp import checkpoint
from convnlp.errors import UserError
from convnlp.tasks import TASKS, task_config

log = logging.getLogger(__name__)

OPSET = 17
FORMATS = ("onnx",)
COPIED = ("tokenizer.json", "labels.json", "config.json", "metrics.json")
EXAMPLES = ["Alice met Bob in Paris .", "a b", "x"]  # the inputs whose first batch is traced


class _FirstBatch:
    """Stands in for the model while the task's own prediction code runs once: keeps the first
    batch it is called with (what the exported graph must take)."""

    members = task_configs = None  # not an ensemble

    def __init__(self, model: torch.nn.Module):
        self.model, self.batch = model, None

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, batch: dict) -> torch.Tensor:
        if self.batch is None:
            self.batch = {k: v for k, v in batch.items()}
        return self.model(batch)


class _Graph(torch.nn.Module):
    """The model with its batch as positional tensors (ONNX has no dict inputs)."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


def example_batch(model, config: dict, tokenizer, labels: list[str]) -> dict[str, torch.Tensor]:
    task = TASKS[config["task"]["name"]]
    capture = _FirstBatch(model)
    task.predict_records(capture, tokenizer, labels, [task.read_input(t) for t in EXAMPLES], torch.device("cpu"),
                         task_config(config))
    if capture.batch is None:
        raise UserError("export: the example inputs gave the model nothing to read")
    return capture.batch


def export(directory: str | Path, output: str | Path, fmt: str = "onnx") -> dict:
    """Write the exported directory; its export.json (also returned)."""
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not supported; choose one of: {', '.join(FORMATS)}")
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UserError("format=onnx needs onnx and onnxruntime: pip install 'convnlp[export]'") from None
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"output={output}: exists and is not an empty directory; choose a new directory")
    model, config, tokenizer, labels = checkpoint.load(directory, "cpu")
    source = checkpoint.existing(directory)
    model.eval()
    batch = example_batch(model, config, tokenizer, labels)
    names = list(batch)
    graph = _Graph(model, names).eval()
    axes = {name: {0: "batch", 1: f"{name}_length"} for name in names}
    with torch.no_grad():
        expected = graph(*batch.values())
    axes["scores"] = {0: "batch", 1: "scores_length"} if expected.dim() == 3 else {0: "batch"}
    output.mkdir(parents=True, exist_ok=True)
    path = output / "model.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's notes on traced shapes
            torch.onnx.export(graph, tuple(batch.values()), str(path), input_names=names, output_names=["scores"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # an operator the exporter or the checker cannot take
        shutil.rmtree(output, ignore_errors=True)
        raise UserError(f"export: {config['encoder']['name']} / task={config['task']['name']} cannot be exported to "
                        f"ONNX opset {OPSET}: {str(e).strip().splitlines()[0][:300]}") from None
    session = OnnxModel(path)
    got = session(batch)
    if got.dim() == 3:  # generation's graph keeps all max_length output positions: compare the source's
        got = got[:, :expected.shape[1]]
    difference = float((got - expected).abs().max())
    for name in COPIED:
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)
    info = {"format": "onnx", "opset": OPSET, "source": str(source.resolve()), "inputs": names,
            "outputs": ["scores"], "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "max_abs_difference_at_export": difference}
    (output / "export.json").write_text(json.dumps(info, indent=2))
    if difference > 1e-3:
        raise UserError(f"export: ONNX Runtime's scores differ from PyTorch's by {difference:.3g} on the example "
                        f"inputs; {output} is written, but do not serve it")
    return info


class OnnxModel:
    """An ONNX Runtime session that the tasks' prediction code calls as it calls the PyTorch model:
    ``model(batch) -> scores`` (a CPU tensor)."""

    members = task_configs = None  # not an ensemble

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged or foreign file
            raise UserError(f"{path}: not a usable ONNX model ({str(e).strip().splitlines()[0][:200]})") from None
        self.names = [i.name for i in self.session.get_inputs()]

    def eval(self):
        return self

    def __call__(self, batch: dict) -> torch.Tensor:
        missing = [name for name in self.names if name not in batch]
        if missing:
            raise UserError(f"the ONNX model takes {', '.join(missing)}, which this batch lacks")
        feed = {name: batch[name].cpu().numpy() for name in self.names}
        return torch.from_numpy(self.session.run(None, feed)[0])


def load_exported(directory: str | Path, threads: int = 0):
    """(model, config, tokenizer, labels) of an exported directory (model.onnx), checked as a
    checkpoint is; the model an ``OnnxModel``."""
    from omegaconf import ListConfig

    if isinstance(directory, (list, tuple, ListConfig)):
        raise UserError("runtime=onnx runs one exported model, not an ensemble: give one directory")
    directory = Path(str(directory))
    if not (directory / "model.onnx").is_file() and (directory / "onnx" / "model.onnx").is_file():
        directory = directory / "onnx"  # a training run's directory, exported to its onnx/
    directory, config, tokenizer, labels, _ = checkpoint.read(
        directory, ("model.onnx", "config.json", "tokenizer.json", "labels.json"))
    return OnnxModel(directory / "model.onnx", threads), config, tokenizer, labels


def export_command(cfg: DictConfig) -> None:
    output = cfg.output if cfg.output is not None else str(checkpoint.existing(cfg.checkpoint).parent / "onnx")
    info = export(cfg.checkpoint, output, cfg.format)
    print(json.dumps({"output": output, "opset": info["opset"], "inputs": info["inputs"],
                      "max_abs_difference_at_export": info["max_abs_difference_at_export"]}))
