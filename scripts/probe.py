"""Long-range probe: accuracy against dependency distance for a plain and a dilated encoder of
equal depth and (nearly) equal parameters. Accuracy (on the tokens that have a dependency)
should stay high while the dependency lies inside the encoder's receptive field and drop to
chance (1 / alphabet) beyond it.

With --task classification the label says whether the first token equals the one `distance`
tokens later (chance 50%): max pooling can only solve it where one position sees both.

    python scripts/probe.py                         # distances 1 2 4 8 16, both encoders
    python scripts/probe.py --distances 2 4 --epochs 4 --out outputs/probe-quick
    python scripts/probe.py --task classification --out outputs/probe-classification

Prints a table, writes probe.json and probe.png to --out. Set the thread count with --threads
(the figures in docs/experiments/long-range-probe.md used 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from convnlp import checkpoint
from convnlp.config import validate
from convnlp.data import load_splits
from convnlp.inspect import plot_curves
from convnlp.tasks import tagging

ENCODERS = {  # 4 kernel-wide layers each, width 64: receptive fields 9 and 31 characters
    "plain": ["encoder=plain", "encoder.layers=4", "encoder.width=64"],
    "dilated": ["encoder=dilated", "encoder.dilations=[1,2,4,8]", "encoder.blocks=1", "encoder.width=64"],
}


def dependent_accuracy(checkpoint_dir: Path, data_cfg, distance: int) -> float:
    """Test accuracy on the tokens that have a dependency (position >= distance): the first
    `distance` tokens are tagged with themselves and need no look back."""
    loaded = checkpoint.load(checkpoint_dir)
    model, tokenizer, labels = loaded.model, loaded.tokenizer, loaded.labels
    test = load_splits(data_cfg, ("test",))["test"]
    predicted = tagging.predict(model, tokenizer, labels, test["tokens"], torch.device("cpu"))
    pairs = [(g, p) for gold, pred in zip(test["tags"], predicted) for g, p in list(zip(gold, pred))[distance:]]
    return sum(g == p for g, p in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distances", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/probe"))
    parser.add_argument("--task", choices=["tagging", "classification"], default="tagging")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)

    results = []
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for name, overrides in ENCODERS.items():
            for distance in args.distances:
                task = ["task=classification"] if args.task == "classification" else ["task.word_layers=0"]
                run_overrides = [
                    *overrides,
                    "data=probe_longrange",
                    f"data.distance={distance}",
                    *task,
                    f"trainer.max_epochs={args.epochs}",
                    "trainer.progress=false",
                    "trainer.patience=0",
                    f"trainer.threads={args.threads}",
                ]
                cfg = validate(compose(config_name="train", overrides=run_overrides))
                start = time.perf_counter()
                run_dir = args.out / f"{name}-d{distance}"
                subprocess.run(
                    [sys.executable, "-m", "convnlp", "train", *run_overrides, f"hydra.run.dir={run_dir}"], check=True
                )  # the CLI, as a user runs it
                metrics = json.loads((run_dir / "metrics.json").read_text())
                if args.task == "classification":
                    accuracy, chance = metrics["test"]["accuracy"], 0.5
                else:
                    accuracy = dependent_accuracy(run_dir / "best", cfg.data, distance)
                    chance = 1 / cfg.data.alphabet
                results.append(
                    {
                        "encoder": name,
                        "distance_tokens": distance,
                        "distance_chars": 2 * distance,
                        "receptive_field": metrics["receptive_field"],
                        "parameters": metrics["parameters"],
                        "test_accuracy": accuracy,
                        "test_accuracy_all_tokens": metrics["test"]["accuracy"],
                        "chance": chance,
                        "seconds": time.perf_counter() - start,
                    }
                )
                print(
                    f"{name:8} distance {distance:3} tokens ({2 * distance:3} chars): "
                    f"test accuracy {accuracy:.3f} (chance {chance:.3f})",
                    flush=True,
                )

    fields = {r["encoder"]: (r["receptive_field"], r["parameters"]) for r in results}
    print(
        f"\n{'distance (chars)':>17} "
        + " ".join(f"{f'{n} RF {rf}, {p:,} params':>32}" for n, (rf, p) in fields.items())
        + f" {'chance':>8}"
    )  # 1 / alphabet
    for distance in args.distances:
        row = [r for r in results if r["distance_tokens"] == distance]
        print(
            f"{2 * distance:>17} "
            + " ".join(f"{r['test_accuracy']:>32.3f}" for r in row)
            + f" {row[0]['chance']:>8.3f}"
        )
    (args.out / "probe.json").write_text(
        json.dumps({"task": args.task, "threads": args.threads, "epochs": args.epochs, "results": results}, indent=2)
    )
    curves = {
        f"{n} (receptive field {rf})": (
            [2 * r["distance_tokens"] for r in results if r["encoder"] == n],
            [r["test_accuracy"] for r in results if r["encoder"] == n],
        )
        for n, (rf, _) in fields.items()
    }
    curves["chance"] = ([2 * d for d in args.distances], [r["chance"] for r in results if r["encoder"] == "plain"])
    title = (
        "long-range probe: is the first token repeated `distance` later?"
        if args.task == "classification"
        else "long-range probe: tag = the token `distance` to the left"
    )
    plot_curves(
        args.out / "probe.png",
        title,
        "distance in characters",
        "test accuracy" + ("" if args.task == "classification" else " (dependent tokens)"),
        curves,
    )
    print(f"wrote {args.out / 'probe.json'} and {args.out / 'probe.png'}")


if __name__ == "__main__":
    main()
