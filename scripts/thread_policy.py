"""Before/after figures of convnlp's thread policy: the default training beside busy neighbours.

Runs the default training (`convnlp train`, CMUdict stress, dilated encoder) for a fixed
number of steps with ``trainer.threads=2`` (torch's default count on a 2-core machine: the old
behaviour) and ``trainer.threads=0`` (the policy: the cores other processes leave free, see
convnlp/threads.py), alone and beside 1 and 2 busy single-thread processes. Settings are
interleaved within each repetition; prints a table of training symbols/s (median, min-max) and
writes every run to a JSON file.

    python scripts/thread_policy.py                       # 3 repetitions, 300 steps, 0/1/2 neighbours
    python scripts/thread_policy.py --repetitions 5 --steps 500 --out policy.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from convnlp.bench.harness import neighbours


def train(threads: int, steps: int, root: Path) -> dict:
    run = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "convnlp",
            "train",
            f"trainer.threads={threads}",
            f"trainer.max_steps={steps}",
            "trainer.progress=false",
            f"hydra.run.dir={run}",
        ],
        check=True,
        capture_output=True,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "train_symbols_per_s": metrics["train_symbols_per_s"],
        "final_threads": metrics["threads"],
        "thread_changes": metrics.get("thread_changes"),
        "wall_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="thread_policy.json")
    args = parser.parse_args()
    policies = {"threads=2 (before)": 2, "threads=0 (policy)": 0}
    runs = []
    with tempfile.TemporaryDirectory() as root:
        for rep in range(args.repetitions):
            for n in args.neighbours:
                names = list(policies)[rep % 2 :] + list(policies)[: rep % 2]  # alternate the first one
                with neighbours(n):
                    for name in names:
                        result = train(policies[name], args.steps, Path(root))
                        runs.append({"repetition": rep, "neighbours": n, "policy": name, **result})
                        print(
                            f"repetition {rep + 1}, {n} neighbour(s), {name}: "
                            f"{result['train_symbols_per_s']:,.0f} symbols/s",
                            file=sys.stderr,
                        )
    print(f"\ndefault training, {args.steps} steps, training symbols/s: median (min - max) of {args.repetitions}")
    print(
        "\n| busy neighbours | " + " | ".join(policies) + " | policy / before |\n|---:|" + "---:|" * (len(policies) + 1)
    )
    for n in args.neighbours:
        cells, medians = [], []
        for name in policies:
            values = [r["train_symbols_per_s"] for r in runs if (r["neighbours"], r["policy"]) == (n, name)]
            medians.append(statistics.median(values))
            cells.append(f"{medians[-1]:,.0f} ({min(values):,.0f} - {max(values):,.0f})")
        print(f"| {n} | " + " | ".join(cells) + f" | {medians[1] / medians[0]:.2f}× |")
    Path(args.out).write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "steps": args.steps, "runs": runs}, indent=1)
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
