"""Run all ten folds of a cross-validated data set (MR) and report mean ± std test accuracy.

    CONVNLP_DATA_DIR=../shared/datasets python scripts/crossval.py tokenizer=word encoder=dilated
    python scripts/crossval.py --folds 0 1 --out outputs/crossval_quick tokenizer=word

Fold k tests on fold k, selects the model on fold k+1 (mod 10) and trains on the other eight
(see conf/data/mr.yaml). Each fold's metrics go to --out/fold<k>.json as soon as it finishes
(--skip-done resumes a long run); the summary to --out/summary.json and a table on stdout.
Threads are set with --threads (2 for the README figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from convnlp.config import validate
from convnlp.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mr")
    parser.add_argument("--folds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/crossval"))
    parser.add_argument("--skip-done", action="store_true", help="reuse fold<k>.json files already in --out")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every fold, e.g. tokenizer=word")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for fold in args.folds:
            target = args.out / f"fold{fold}.json"
            if args.skip_done and target.is_file():
                continue
            cfg = validate(compose(config_name="train", overrides=[
                "task=classification", f"data={args.data}", f"data.fold={fold}", "trainer.progress=false",
                f"trainer.threads={args.threads}", *args.overrides]))
            start = time.perf_counter()
            metrics = train(cfg, args.out / f"fold{fold}")
            metrics.update(fold=fold, wall_seconds=time.perf_counter() - start, overrides=args.overrides,
                           date=time.strftime("%Y-%m-%d"))
            target.write_text(json.dumps(metrics, indent=2))

    rows = [json.loads((args.out / f"fold{k}.json").read_text()) for k in args.folds
            if (args.out / f"fold{k}.json").is_file()]
    lines = ["| fold | validation | test | training wall time |", "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['fold']} | {100 * r['validation']['accuracy']:.2f}% | {100 * r['test']['accuracy']:.2f}% "
                     f"| {r['train_seconds'] / 60:.1f} min |")
    tests = [100 * r["test"]["accuracy"] for r in rows]
    summary = {"data": args.data, "overrides": args.overrides, "folds": [r["fold"] for r in rows],
               "test_accuracy": tests, "mean": statistics.mean(tests) if tests else None,
               "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
               "train_minutes_total": sum(r["train_seconds"] for r in rows) / 60}
    if tests:
        lines.append(f"| mean ± std | | **{summary['mean']:.2f} ± {summary['std']:.2f}%** | "
                     f"{summary['train_minutes_total']:.1f} min in all |")
    print("\n".join(lines))
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
