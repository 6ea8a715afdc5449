"""ONNX Runtime against PyTorch on trained checkpoints' test sets: prints a table, writes JSON.

    python scripts/onnx_parity.py outputs/train/<run> [more runs ...] --out docs/results/onnx_parity.json

Each checkpoint is exported twice (float32, and static int8 calibrated on 1000 examples of its
own training data) into a temporary directory, then every example of its test split (its data
config's, the same split `convnlp eval data.split=test` reads) is predicted by the three models
through the Python API, as `convnlp predict` runs them. Reported per checkpoint:

- float32 ONNX against PyTorch: the share of identical predictions (tags, labels, output
  strings), the largest class-probability difference (classification) and the accuracy of both;
- int8 ONNX: its accuracy and its agreement with PyTorch's predictions.

Timing is not measured here (`convnlp bench bench.runtimes=[torch,onnx,onnx-int8]` is).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

import convnlp
from convnlp import checkpoint
from convnlp.config import validate_group
from convnlp.data import load_splits
from convnlp.export import agreement, export
from convnlp.tasks import get_task, task_config


def compare(a: list[dict], b: list[dict]) -> tuple[int, int, float | None]:
    """(identical predictions, predictions, largest class-probability difference or None)."""
    same, total = agreement(a, b)
    differences = [
        abs(x["probabilities"][k] - y["probabilities"][k])
        for x, y in zip(a, b)
        if x.get("probabilities")
        for k in x["probabilities"]
    ]
    return same, total, max(differences) if differences else None


def measure(run: str, root: Path, threads: int) -> dict:
    config = checkpoint.read(run).config  # the config (the three models are loaded below)
    name = config["task"]["name"]
    task = get_task(name)
    data_cfg = validate_group("data", OmegaConf.merge(OmegaConf.create(config["data"]), {"split": "test"}))
    split = load_splits(data_cfg, splits=("test",), task=name)["test"]
    column = split[task.COLUMNS[0]]
    texts = [" ".join(x) if isinstance(x, list) else x for x in column]
    start = time.perf_counter()
    info32 = export(run, root / "float32")
    info8 = export(run, root / "int8", quantized="int8")
    exported = time.perf_counter() - start
    models = {
        "torch": convnlp.load(run, device="cpu", threads=threads),
        "onnx": convnlp.load(root / "float32", runtime="onnx", threads=threads),
        "onnx-int8": convnlp.load(root / "int8", runtime="onnx", threads=threads),
    }
    records, accuracy = {}, {}
    for key, model in models.items():
        records[key] = model.predict(texts)
        with torch.inference_mode():
            accuracy[key] = task.evaluate(
                model.model, model.tokenizer, model.labels, split, task_config(config), torch.device("cpu"), 8000
            )["accuracy"]
    same, total, largest = compare(records["onnx"], records["torch"])
    same8, _, largest8 = compare(records["onnx-int8"], records["torch"])
    unit = {"tagging": "tags", "classification": "labels", "generation": "output strings"}[name]
    return {
        "checkpoint": run,
        "task": name,
        "encoder": config["encoder"]["name"],
        "data": data_cfg.name,
        "examples": len(texts),
        "unit": unit,
        "predictions": total,
        "onnx_identical": same,
        "onnx_max_probability_difference": largest,
        "int8_identical": same8,
        "int8_max_probability_difference": largest8,
        "accuracy": accuracy,
        "max_abs_difference_at_export": info32["max_abs_difference_at_export"],
        "int8_calibration": info8["calibration"],
        "export_seconds": exported,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="training runs or checkpoint directories")
    parser.add_argument("--out", default="onnx_parity.json")
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and of the ONNX Runtime sessions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, run in enumerate(args.runs):
            rows.append(measure(run, Path(tmp) / str(k), args.threads))
            r = rows[-1]
            print(f"{run}: {r['onnx_identical']}/{r['predictions']} identical", flush=True)
    print(
        "\n| checkpoint | task / encoder / data | test examples | float32 ONNX = PyTorch | largest prob. difference "
        "| accuracy PyTorch | float32 ONNX | int8 ONNX | int8 = PyTorch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = "" if r["onnx_max_probability_difference"] is None else f"{r['onnx_max_probability_difference']:.1e}"
        a = r["accuracy"]
        print(
            f"| {Path(r['checkpoint']).name} | {r['task']} / {r['encoder']} / {r['data']} | {r['examples']:,} | "
            f"{r['onnx_identical']:,} of {r['predictions']:,} {r['unit']} | {diff} | {a['torch']:.2%} | "
            f"{a['onnx']:.2%} | {a['onnx-int8']:.2%} | {r['int8_identical'] / max(r['predictions'], 1):.2%} |"
        )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "threads": args.threads,
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
