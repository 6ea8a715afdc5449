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
import os
import random
import shutil
import warnings
from importlib.util import find_spec
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from convnlp import checkpoint
from convnlp.config import validate_group
from convnlp.data import load_splits
from convnlp.errors import UserError, first_line
from convnlp.inputs import BadLine, read_lines
from convnlp.onnx_runtime import OnnxModel
from convnlp.tasks import get_task, task_config

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
        get_task(config["task"]["name"]).predict_records(
            recorder, tokenizer, labels, inputs, torch.device("cpu"), task_config(config)
        )
    return recorder.batches


class _Graph(torch.nn.Module):
    """The model with its batch as positional tensors (ONNX has no dict inputs)."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


def example_batch(model, config: dict, tokenizer, labels: list[str]) -> dict[str, torch.Tensor]:
    task = get_task(config["task"]["name"])
    batches = batches_of(model, config, tokenizer, labels, [task.read_input(t) for t in EXAMPLES])
    if not batches:
        raise UserError("export: the example inputs gave the model nothing to read")
    return batches[0]


def calibration_inputs(config: dict, calibration, count: int, encoding: str = "utf-8") -> tuple[list, str]:
    """What int8 quantization calibrates on, and a description: the lines of the file
    ``calibration`` (read as ``predict`` reads them), a list of inputs, or (None) ``count``
    examples of the checkpoint's training split (a seeded sample)."""
    task = get_task(config["task"]["name"])
    if isinstance(calibration, list):
        inputs = [x for x in calibration if x][:count]
        if not inputs:
            raise UserError("calibration: no non-empty inputs to calibrate on")
        return inputs, f"{len(inputs)} given inputs"
    if calibration is not None:
        try:
            with open(calibration, "rb") as f:
                lines = list(read_lines(f, str(calibration), encoding))
        except OSError as e:
            raise UserError(f"calibration={calibration}: cannot open ({e.strerror})") from None
        bad = next((line for line in lines if isinstance(line, BadLine)), None)
        if bad is not None:
            raise UserError(f"{bad.where}: {bad.problem}")
        inputs = [task.read_input(line) for line in lines if line.strip()]
        if not inputs:
            raise UserError(f"calibration={calibration}: no non-empty lines to calibrate on")
        kept = f"the first {count} of {len(inputs)}" if len(inputs) > count else f"{len(inputs)}"
        return inputs[:count], f"{kept} non-empty lines of {calibration}"
    try:
        data_cfg = validate_group("data", OmegaConf.create(config["data"]))
        split = load_splits(data_cfg, splits=("train",), task=config["task"]["name"])["train"]
    except (UserError, KeyError) as e:
        raise UserError(
            f"quantize=int8 calibrates on the checkpoint's training data ({config['data']['name']}), "
            f"which cannot be read here ({e}); give calibration=FILE, a file of inputs as predict "
            "reads them"
        ) from None
    rows = sorted(random.Random(0).sample(range(len(split)), min(count, len(split))))
    inputs = [x for x in split.select(rows)[task.COLUMNS[0]] if x]
    if not inputs:
        raise UserError(
            f"quantize=int8: the checkpoint's training data ({config['data']['name']}) gave no non-empty "
            "inputs to calibrate on; give calibration=FILE"
        )
    return inputs, f"{len(inputs)} examples of {config['data']['name']}'s training split"


def quantize(fp32: Path, int8: Path, batches: list[dict[str, torch.Tensor]]) -> None:
    """Static int8 quantization (ONNX Runtime's QOperator form: QLinearConv, QLinearMatMul):
    weights int8 per output channel, activations uint8 with ranges from ``batches``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    names = [i.name for i in onnx.load(str(prepared)).graph.input]  # the optimizer drops unused inputs

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{name: b[name].numpy() for name in names} for b in batches])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
    )
    prepared.unlink()


def predicted(record: dict) -> list:
    """A record's predictions: its tags (tagging), or its one label or output string."""
    if "tags" in record:
        return record["tags"] or []  # None for an input that could not be read
    return [record.get("label", record.get("output"))]


def agreement(a: list[dict], b: list[dict]) -> tuple[int, int]:
    """(predictions two runtimes' records share, predictions compared): tags, labels, output strings."""
    same = total = 0
    for ra, rb in zip(a, b):
        pa, pb = predicted(ra), predicted(rb)
        same += sum(x == y for x, y in zip(pa, pb))
        total += max(len(pa), len(pb))
    return same, total


def export(
    directory: str | Path,
    output: str | Path,
    fmt: str = "onnx",
    quantized: str | None = None,
    calibration: str | list | None = None,
    calibration_examples: int = 1000,
    encoding: str = "utf-8",
) -> dict:
    """Write the exported directory; its export.json (also returned). ``quantized="int8"``:
    the graph statically quantized, calibrated on ``calibration`` (a file of input lines, or a
    list of inputs) or on ``calibration_examples`` examples of the checkpoint's training data.
    The directory appears whole or not at all (it is written beside ``output``, then renamed)."""
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not supported; choose one of: {', '.join(FORMATS)}")
    if quantized not in QUANTIZED:
        raise UserError(f"quantize={quantized!r} is not supported; choose null (float32) or int8")
    if not isinstance(calibration_examples, int) or isinstance(calibration_examples, bool) or calibration_examples < 1:
        raise UserError(f"calibration_examples={calibration_examples!r} must be a whole number, at least 1")
    if calibration is not None and not quantized:
        raise UserError(f"calibration={calibration}: calibration is for quantize=int8; a float32 export needs none")
    if find_spec("onnx") is None or find_spec("onnxruntime") is None:
        raise UserError("format=onnx needs onnx and onnxruntime: pip install 'convnlp[export]'")
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"output={output}: exists and is not an empty directory; choose a new directory")
    loaded = checkpoint.load(directory, "cpu")
    model, config, tokenizer, labels = loaded.model.eval(), loaded.config, loaded.tokenizer, loaded.labels
    if config["task"]["name"] == "autoencoder":
        raise UserError(
            "export: task=autoencoder decodes from a code it computes in between (and encode and interpolate "
            "need that code), which the exported graph does not expose; use it with runtime=torch"
        )
    if getattr(model.head, "autoregressive", False):
        raise UserError(
            f"export: decoder={config['decoder']['name']} decodes step by step with a search over a growing "
            "prefix, which one ONNX graph does not hold; serve it with runtime=torch (decoder=deconv exports)"
        )
    inputs = calibrated_on = None
    if quantized:  # read (and checked) before anything is written
        inputs, calibrated_on = calibration_inputs(config, calibration, calibration_examples, encoding)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        info = _write(partial, checkpoint.existing(directory), model, config, tokenizer, labels, inputs)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if quantized:
        info["calibration"] = calibrated_on
    (partial / "export.json").write_text(json.dumps(info, indent=2))
    if output.exists():
        output.rmdir()  # empty (checked above)
    partial.rename(output)
    if info["max_abs_difference_at_export"] > 1e-3:
        raise UserError(
            f"export: ONNX Runtime's scores differ from PyTorch's by "
            f"{info['max_abs_difference_at_export']:.3g} on the example inputs; {output} is written, "
            "but do not serve it"
        )
    return info


def _write(output: Path, source: Path, model, config: dict, tokenizer, labels: list[str], inputs: list | None) -> dict:
    """The exported files in ``output`` (int8 where ``inputs`` are given to calibrate on)."""
    import onnx
    import onnxruntime

    batch = example_batch(model, config, tokenizer, labels)
    names = list(batch)
    graph = _Graph(model, names).eval()
    axes = {name: {0: "batch", 1: f"{name}_length"} for name in names}
    with torch.no_grad():
        expected = graph(*batch.values())
    axes["scores"] = {0: "batch", 1: "scores_length"} if expected.dim() == 3 else {0: "batch"}
    path = output / "model.onnx"
    what = f"{config['encoder']['name']} / task={config['task']['name']}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's notes on traced shapes
            torch.onnx.export(
                graph,
                tuple(batch.values()),
                str(path),
                input_names=names,
                output_names=["scores"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # an operator the exporter or the checker cannot take
        raise UserError(f"export: {what} cannot be exported to ONNX opset {OPSET}: {first_line(e)}") from None
    got = OnnxModel(path)(batch)
    if got.dim() == 3:  # generation's graph keeps all max_length output positions: compare the source's
        got = got[:, : expected.shape[1]]
    difference = float((got - expected).abs().max())
    for name in COPIED:
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)
    info = {
        "format": "onnx",
        "opset": OPSET,
        "source": str(source.resolve()),
        "inputs": names,
        "outputs": ["scores"],
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "max_abs_difference_at_export": difference,
        "quantized": None,
    }
    if inputs is None:
        return info
    if difference > 1e-3:
        raise UserError(
            f"quantize=int8 not attempted: the float32 graph's scores already differ from PyTorch's by "
            f"{difference:.3g} on the example inputs"
        )
    fp32 = path.with_name("float32.onnx")
    path.rename(fp32)
    try:
        quantize(fp32, path, batches_of(model, config, tokenizer, labels, inputs))
        task = get_task(config["task"]["name"])
        records = [
            task.predict_records(OnnxModel(p), tokenizer, labels, inputs, torch.device("cpu"), task_config(config))
            for p in (path, fp32)
        ]
    except UserError:
        raise
    except Exception as e:  # a graph ONNX Runtime's quantizer (or its int8 kernels) cannot take
        raise UserError(f"quantize=int8: ONNX Runtime cannot quantize {what}: {first_line(e)}") from None
    fp32.unlink()
    same, total = agreement(*records)
    return {**info, "quantized": "int8", "int8_agreement_with_float32": same / max(total, 1)}


def export_command(cfg: DictConfig) -> None:
    default = "onnx-int8" if cfg.quantize else "onnx"
    output = cfg.output if cfg.output is not None else str(checkpoint.existing(cfg.checkpoint).parent / default)
    info = export(
        cfg.checkpoint, output, cfg.format, cfg.quantize, cfg.calibration, cfg.calibration_examples, cfg.encoding
    )
    print(
        json.dumps(
            {
                "output": output,
                **{
                    k: info[k]
                    for k in (
                        "opset",
                        "inputs",
                        "max_abs_difference_at_export",
                        "quantized",
                        "int8_agreement_with_float32",
                        "calibration",
                    )
                    if k in info
                },
            }
        )
    )
