"""Train one generation model per loss x bottleneck of the deconvolutional decoder on the same
data, encoder and budget, and tabulate word / phoneme / character error rates, size and time.

    python scripts/compare_decoders.py trainer.max_minutes=8          # CMUdict G2P, 4 runs
    python scripts/compare_decoders.py --losses ctc --bottlenecks sequence vector --threads 1

Each run's metrics go to --out/<loss>_<bottleneck>.json as soon as it finishes (--skip-done
reuses them), then the table to --out/table.md and --out/results.json. Threads are set with
--threads and written into every result.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", nargs="+", default=["ctc", "ce"], choices=["ctc", "ce"])
    parser.add_argument("--bottlenecks", nargs="+", default=["sequence", "vector"], choices=["sequence", "vector"])
    parser.add_argument("--data", default="cmudict_g2p")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/compare_decoders"))
    parser.add_argument("--skip-done", action="store_true", help="reuse <loss>_<bottleneck>.json files in --out")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    names = [f"{loss}_{bottleneck}" for loss in args.losses for bottleneck in args.bottlenecks]

    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for name in names:
            loss, bottleneck = name.split("_")
            target = args.out / f"{name}.json"
            if args.skip_done and target.is_file():
                continue
            cfg = validate(compose(config_name="train", overrides=[
                "task=generation", f"data={args.data}", f"task.loss={loss}", f"decoder.bottleneck={bottleneck}",
                "trainer.progress=false", f"trainer.threads={args.threads}", *args.overrides]))
            start = time.perf_counter()
            metrics = train(cfg, args.out / name)
            metrics.update(loss=loss, bottleneck=bottleneck, wall_seconds=time.perf_counter() - start,
                           overrides=args.overrides, date=time.strftime("%Y-%m-%d"))
            target.write_text(json.dumps(metrics, indent=2))

    rows = [json.loads((args.out / f"{n}.json").read_text()) for n in names if (args.out / f"{n}.json").is_file()]
    lines = ["| loss | bottleneck | parameters | validation WER | test WER | test PER | test CER | epochs | "
             "training wall time | inference sources/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['loss']}` | `{r['bottleneck']}` | {r['parameters']:,} | "
                     f"{100 * r['validation']['wer']:.2f}% | {100 * r['test']['wer']:.2f}% | "
                     f"{100 * r['test']['per']:.2f}% | {100 * r['test']['cer']:.2f}% | {r['epochs']:g} | "
                     f"{r['train_seconds'] / 60:.1f} min | {r['test']['sources_per_s']:,.0f} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
