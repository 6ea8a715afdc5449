"""The timing harness: the machine's matmul peak, busy neighbours, one timed measurement, and
every repetition of every measurement at one setting, the subjects interleaved."""

from __future__ import annotations

import logging
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import torch

from convnlp.bench.tables import _setting
from convnlp.errors import UserError

log = logging.getLogger("convnlp.bench")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, n: int = 1024, seconds: float = 0.2, trials: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate at the current thread count (the 'peak'): the
    best of ``trials`` timings of ``seconds`` each (a single timing was seen 40% low)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    synchronize(device)
    rates = []
    for _ in range(trials):
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < seconds:
            a @ b
            calls += 1
        synchronize(device)
        rates.append(2 * n**3 * calls / (time.perf_counter() - start) / 1e9)
    return max(rates)


NEIGHBOUR = """
import os, torch
torch.set_num_threads(1)
a, parent = torch.randn(256, 256), os.getppid()
print("ready", flush=True)
while os.getppid() == parent:  # stops with bench, even when bench is killed
    for _ in range(50):
        a @ a
"""


@contextmanager
def neighbours(count: int):
    """``count`` busy processes beside the measurement, one thread each, computing without pause
    (as a single-thread training does); stopped when the block ends."""
    procs = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", NEIGHBOUR],
                    stdout=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
            )
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                try:
                    code = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = "none: it hung"
                raise UserError(f"bench.neighbours: a busy neighbour process did not start (exit status {code})")
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _runs(subject, measure: str) -> bool:
    return subject.measures is None or measure in subject.measures


def _work(measure: str) -> str:
    """The inputs a measurement runs on: infer, latency, train, or @T for infer@T and train@T."""
    kind, _, length = measure.partition("@")
    return f"@{length}" if length else kind


def _timed(run, work: list[tuple], seconds: float) -> tuple[float, int, int]:
    """Run ``run`` over the (input, symbols) pairs of ``work`` (once at least, cycling until
    ``seconds`` have passed): elapsed seconds, symbols and batches processed."""
    done, symbols, start = 0, 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        batch, size = work[done % len(work)]
        run(batch)
        symbols += size
        done += 1
    return time.perf_counter() - start, symbols, done


def measure_once(subject, measure: str, seconds: float) -> dict:
    work = subject.work[_work(measure)]
    if measure == "latency":
        times = []
        for sentence, _ in work:
            start = time.perf_counter()
            subject.infer(sentence)
            times.append(1000 * (time.perf_counter() - start))
        times.sort()
        return {
            "latency_p50_ms": statistics.median(times),
            "latency_p95_ms": times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)],
        }
    run = subject.train if measure.startswith("train") else subject.infer
    elapsed, symbols, batches = _timed(run, work, seconds)
    return {"symbols_per_s": symbols / elapsed, "batches": batches, "seconds": elapsed}


def run_setting(
    subjects: list,
    measures: list[str],
    threads: int,
    n_neighbours: int,
    b,
    words_per_symbol: float,
    raw: list[dict],
    bar,
) -> None:
    """Every repetition of every measurement at one setting, the subjects interleaved from a
    rotating first one; rows appended to ``raw``."""
    for rep in range(b.repetitions):
        for measure in measures:
            order = 0
            for k in range(len(subjects)):
                subject = subjects[(k + rep) % len(subjects)]
                if not _runs(subject, measure):
                    continue
                bar.set_postfix_str(f"{measure} {subject.name}")
                bar.update(1)
                row = {
                    "threads": threads,
                    "neighbours": n_neighbours,
                    "repetition": rep,
                    "measure": measure,
                    "encoder": subject.name,
                    "order": order,
                    **measure_once(subject, measure, b.seconds),
                }
                if measure == "infer":
                    row["words_per_s"] = row["symbols_per_s"] * words_per_symbol
                raw.append(row)
                order += 1
        log.info("bench: %s, repetition %d of %d done", _setting(threads, n_neighbours), rep + 1, b.repetitions)
