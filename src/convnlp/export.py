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
QUANTIZED = (None, "int8")
COPIED = ("tokenizer.json", "labels.json", "config.json", "metrics.json")
EXAMPLES = ["Alice met Bob in Paris .", "a b", "x"]  # the inputs whose first batch is traced


class _Recorder:
    """Stands in for the model while the task's own prediction code runs: keeps the batches it
    is called with (the first: what the exported graph must take; all: calibration data)."""

    members = task_configs = None  # not an ensemble

    def __init__(self, model: torch.nn.Module):
        self.model, self.batches = model, []

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, batch: dict) -> torch.Tensor:
        self.batches.append({k: v for k, v in batch.items()})
        return self.model(batch)


def batches_of(model, config: dict, tokenizer, labels: list[str], inputs: list) -> list[dict[str, torch.Tensor]]:
    """The batches the task's prediction code gives the model for ``inputs`` (read inputs)."""
    recorder = _Recorder(model)
    with torch.no_grad():
        TASKS[config["task"]["name"]].predict_records(recorder, tokenizer, labels, inputs, torch.device("cpu"),
                                                      task_config(config))
    return recorder.batches


class _Graph(torch.nn.Module):
    """The model with its batch as positional tensors (ONNX has no dict inputs)."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


def example_batch(model, config: dict, tokenizer, labels: list[str]) -> dict[str, torch.Tensor]:
    task = TASKS[config["task"]["name"]]
    batches = batches_of(model, config, tokenizer, labels, [task.read_input(t) for t in EXAMPLES])
    if not batches:
        raise UserError("export: the example inputs gave the model nothing to read")
    return batches[0]


def calibration_inputs(config: dict, path: str | None, count: int) -> tuple[list, str]:
    """What int8 quantization calibrates on, and a description: the lines of ``path`` (as
    ``predict`` reads them), or ``count`` examples of the checkpoint's training split (a seeded
    sample)."""
    import random

    task = TASKS[config["task"]["name"]]
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f]
        except OSError as e:
            raise UserError(f"calibration={path}: cannot open ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"calibration={path}: not UTF-8 ({e.reason} at byte {e.start})") from None
        inputs = [task.read_input(line) for line in lines if line.strip()][:count]
        if not inputs:
            raise UserError(f"calibration={path}: no non-empty lines to calibrate on")
        return inputs, f"{len(inputs)} lines of {path}"
    from omegaconf import OmegaConf

    from convnlp.config import validate_group
    from convnlp.data import load_splits

    try:
        data_cfg = validate_group("data", OmegaConf.create(config["data"]))
        split = load_splits(data_cfg, splits=("train",), task=config["task"]["name"])["train"]
    except (UserError, KeyError) as e:
        raise UserError(f"quantize=int8 calibrates on the checkpoint's training data ({config['data']['name']}), "
                        f"which cannot be read here ({e}); give calibration=FILE, a file of inputs as predict "
                        "reads them") from None
    rows = sorted(random.Random(0).sample(range(len(split)), min(count, len(split))))
    column = split.select(rows)[task.COLUMNS[0]]
    return [x for x in column if x], f"{len(rows)} examples of {config['data']['name']}'s training split"


def quantize(fp32: Path, int8: Path, batches: list[dict[str, torch.Tensor]]) -> None:
    """Static int8 quantization (ONNX Runtime's QOperator form: QLinearConv, QLinearMatMul):
    weights int8 per output channel, activations uint8 with ranges from ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx

    prepared = int8.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    names = [i.name for i in onnx.load(str(prepared)).graph.input]  # the optimizer drops unused inputs

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{name: b[name].numpy() for name in names} for b in batches])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    prepared.unlink()


def agreement(a: list[dict], b: list[dict]) -> float:
    """The share of predicted labels (tags, labels, output strings) two runtimes' records share."""
    def labels(record):
        return record.get("tags") or [record.get("label", record.get("output"))]

    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(labels(ra), labels(rb))]
    return sum(x == y for x, y in pairs) / max(len(pairs), 1)


def export(directory: str | Path, output: str | Path, fmt: str = "onnx", quantized: str | None = None,
           calibration: str | None = None, calibration_examples: int = 1000) -> dict:
    """Write the exported directory; its export.json (also returned). ``quantized="int8"``:
    the graph statically quantized, calibrated on ``calibration`` (a file of input lines) or
    on ``calibration_examples`` examples of the checkpoint's training data."""
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not supported; choose one of: {', '.join(FORMATS)}")
    if quantized not in QUANTIZED:
        raise UserError(f"quantize={quantized!r} is not supported; choose null (float32) or int8")
    if not isinstance(calibration_examples, int) or calibration_examples < 1:
        raise UserError(f"calibration_examples={calibration_examples!r} must be a whole number, at least 1")
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
    if quantized:  # read (and checked) before anything is written
        inputs, calibrated_on = calibration_inputs(config, calibration, calibration_examples)
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
            "onnxruntime": onnxruntime.__version__, "max_abs_difference_at_export": difference, "quantized": None}
    if quantized and difference <= 1e-3:
        info.update(_quantize(output, model, config, tokenizer, labels, inputs), calibration=calibrated_on)
    (output / "export.json").write_text(json.dumps(info, indent=2))
    if difference > 1e-3:
        raise UserError(f"export: ONNX Runtime's scores differ from PyTorch's by {difference:.3g} on the example "
                        f"inputs; {output} is written, but do not serve it")
    return info


def _quantize(output: Path, model, config: dict, tokenizer, labels: list[str], inputs: list) -> dict:
    """model.onnx (float32) replaced by its int8 form; how often the two agree on ``inputs``."""
    path = output / "model.onnx"
    fp32 = path.with_name("float32.onnx")
    path.rename(fp32)
    try:
        quantize(fp32, path, batches_of(model, config, tokenizer, labels, inputs))
    except Exception as e:  # a graph ONNX Runtime's quantizer cannot take
        shutil.rmtree(output, ignore_errors=True)
        raise UserError(f"quantize=int8: ONNX Runtime cannot quantize {config['encoder']['name']} / "
                        f"task={config['task']['name']}: {str(e).strip().splitlines()[0][:300]}") from None
    task = TASKS[config["task"]["name"]]

    def records(onnx_path):
        return task.predict_records(OnnxModel(onnx_path), tokenizer, labels, inputs, torch.device("cpu"),
                                    task_config(config))

    share = agreement(records(path), records(fp32))
    fp32.unlink()
    return {"quantized": "int8", "int8_agreement_with_float32": share}


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
    default = "onnx-int8" if cfg.quantize else "onnx"
    output = cfg.output if cfg.output is not None else str(checkpoint.existing(cfg.checkpoint).parent / default)
    info = export(cfg.checkpoint, output, cfg.format, cfg.quantize, cfg.calibration, cfg.calibration_examples)
    print(json.dumps({"output": output, **{k: info[k] for k in ("opset", "inputs", "max_abs_difference_at_export",
                                                                 "quantized", "int8_agreement_with_float32",
                                                                 "calibration") if k in info}}))
