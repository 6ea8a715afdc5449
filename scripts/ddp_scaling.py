"""Training speed of one process against several (torchrun, DDP) on this machine: a table and JSON.

    python scripts/ddp_scaling.py                         # the default tagger, CPU: 1 and 2 processes
    python scripts/ddp_scaling.py --steps 300 -- encoder=bilstm   # overrides for every run after --
    python scripts/ddp_scaling.py --device cuda --processes 1 2 4 8   # on GPUs (NCCL)

Each setting trains the same model for ``--steps`` steps (no evaluation before the end) and
reads its training symbols/s from TensorBoard (``train/tokens_per_s``, all processes together,
every ``--every`` steps, the first window left out: start-up); the figure is the median of those
windows, with the lowest and highest. Settings on the CPU: 1 process with 1 thread, 1 process
with all cores' threads, the same with N times ``trainer.batch_tokens`` (the global batch of N
processes), and N processes of 1 thread each (gloo), each process with ``--batch-tokens``
symbols per step, so N processes take N times the global batch of one per step. Run it alone: other busy processes
make the figures worthless (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf


def tokens_per_s(run: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [s.value for s in events.Scalars("train/tokens_per_s")][2:]  # steps 1 and the first window: start-up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="TensorBoard window, in steps")
    parser.add_argument("--batch-tokens", type=int, default=4000, help="trainer.batch_tokens of each process")
    parser.add_argument("--processes", type=int, nargs="*", default=[2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--output", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out = Path(args.output or f"outputs/ddp_scaling/{time.strftime('%Y-%m-%d_%H-%M-%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    common = [
        f"trainer.max_steps={args.steps}",
        f"trainer.eval_every={args.steps}",
        "trainer.checkpoint_minutes=0",
        "trainer.progress=false",
        f"trainer.log_every={args.every}",
        f"trainer.device={args.device}",
        f"trainer.batch_tokens={args.batch_tokens}",
        *args.overrides,
    ]
    settings = []  # (name, processes, threads, extra overrides)
    batch = args.batch_tokens
    if args.device == "cpu":
        settings += [("1 process x 1 thread", 1, 1, []), (f"1 process x {cores} threads", 1, cores, [])]
    else:
        settings += [("1 process", 1, 0, [])]
    for n in args.processes:
        if n > 1:  # the same global batch in one process: one step of n times the symbols
            settings.append(
                (
                    "1 process"
                    + (f" x {cores} threads" if args.device == "cpu" else "")
                    + f", batch_tokens={n * batch} (the global batch of {n})",
                    1,
                    cores if args.device == "cpu" else 0,
                    [f"trainer.batch_tokens={n * batch}"],
                )
            )
        settings.append(
            (
                f"{n} processes" + (" x 1 thread (gloo)" if args.device == "cpu" else " (NCCL)"),
                n,
                1 if args.device == "cpu" else 0,
                [],
            )
        )
    rows = []
    for i, (name, processes, threads, extra) in enumerate(settings):
        run_dir = out / f"run{i}"
        launcher = (
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
            if processes > 1
            else [sys.executable, "-m"]
        )
        env = {**os.environ, "OMP_NUM_THREADS": str(threads or cores)}
        command = [
            *launcher,
            "convnlp",
            "train",
            *common,
            *extra,
            f"trainer.threads={threads}",
            f"hydra.run.dir={run_dir}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        values = tokens_per_s(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        trainer = OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer
        rows.append(
            {
                "setting": name,
                "processes": processes,
                "threads_per_process": threads or cores,
                "global_batch_tokens": metrics.get("global_batch_tokens", trainer.batch_tokens),
                "symbols_per_s_median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "windows": len(values),
                "test": metrics.get("test"),
            }
        )
        print(f"{name}: {rows[-1]['symbols_per_s_median']:,.0f} symbols/s", file=sys.stderr, flush=True)
    base = rows[0]["symbols_per_s_median"]
    lines = [
        f"training symbols/s, {args.steps} steps, median of {rows[0]['windows']} windows of {args.every} steps "
        f"({time.strftime('%Y-%m-%d')}, {cores} cores, {args.device})",
        "",
        "| setting | symbols/s (median) | min - max | vs first row |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['symbols_per_s_median']:,.0f} | {r['min']:,.0f} - {r['max']:,.0f} | "
            f"{r['symbols_per_s_median'] / base:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    (out / "scaling.md").write_text(table)
    (out / "scaling.json").write_text(json.dumps({"command": sys.argv, "cores": cores, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
