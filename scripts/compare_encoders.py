"""Train one model per encoder family on the same data with the same embedding, head and
training budget, and tabulate accuracy, size, receptive field, wall time and speed.

    CONVNLP_DATA_DIR=../shared/datasets python scripts/compare_encoders.py
    python scripts/compare_encoders.py --families plain dilated --data cmudict_stress --out outputs/cmp

Each family's metrics are written to --out/<family>.json as soon as it finishes (so a long
comparison can be resumed with --skip-done), then the table to --out/table.md and
--out/results.json. Threads are set with --threads (2 for the README figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from convnlp.config import validate
from convnlp.train import train

FAMILIES = ["plain", "residual", "dense", "dilated", "lstm", "bilstm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--data", default="ud_ewt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/compare_encoders"))
    parser.add_argument("--skip-done", action="store_true", help="reuse <family>.json files already in --out")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for family in args.families:
            target = args.out / f"{family}.json"
            if args.skip_done and target.is_file():
                continue
            cfg = validate(compose(config_name="train", overrides=[
                f"encoder={family}", f"data={args.data}", "trainer.progress=false",
                f"trainer.threads={args.threads}", *args.overrides]))
            start = time.perf_counter()
            metrics = train(cfg, args.out / family)
            metrics.update(family=family, wall_seconds=time.perf_counter() - start,
                           overrides=args.overrides, date=time.strftime("%Y-%m-%d"))
            target.write_text(json.dumps(metrics, indent=2))

    rows = [json.loads((args.out / f"{f}.json").read_text()) for f in args.families if (args.out / f"{f}.json").is_file()]
    lines = ["| encoder | parameters | receptive field (symbols) | validation | test | training wall time | "
             "training symbols/s | inference words/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['family']}` | {r['parameters']:,} | {r['receptive_field']} | "
                     f"{100 * r['validation']['accuracy']:.2f}% | {100 * r['test']['accuracy']:.2f}% | "
                     f"{r['train_seconds'] / 60:.1f} min | {r['train_symbols_per_s']:,.0f} | "
                     f"{r['test']['words_per_s']:,.0f} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
