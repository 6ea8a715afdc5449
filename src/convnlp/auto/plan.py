"""How a race spends its wall time: successive halving over rounds of equal wall time.

Round 1 trains every candidate for the same time; the better half (by the validation metric of
``trainer.select``) continues, and so on until one remains, which trains alone for the last round
with all the free cores. Each round gets an equal share of the wall time left; within a round the
candidates run side by side, as many at a time as there are free cores for them, so a round of
``n`` candidates on ``p`` slots trains each for ``wall / ceil(n / p)`` less the time a process
needs to start and to evaluate (measured after each round; a first guess before).
"""

from __future__ import annotations

import math
import time

from convnlp.threads import busy_seconds, cpu_list

FIRST_GUESS_OVERHEAD = 10.0  # seconds a candidate's process spends besides training: start, data, final evaluation


def sizes(n: int) -> list[int]:
    """The candidates in each round: ``n``, then the better half (rounded up), ..., 1."""
    out = [n]
    while out[-1] > 1:
        out.append(math.ceil(out[-1] / 2))
    return out


def round_seconds(remaining: float, left: list[int], slots: int, overhead: float) -> float:
    """The training seconds each candidate of the next round gets: the wall time ``remaining``
    shared equally by the rounds ``left`` (their sizes, the next first), less ``overhead`` for each
    process that runs one after another on a slot."""
    waves = math.ceil(left[0] / max(1, min(slots, left[0])))
    return remaining / len(left) / waves - overhead


def free_cores(seconds: float = 1.0) -> float:
    """The cores other processes leave free, measured over ``seconds`` (all of them where the
    kernel does not tell)."""
    cpus = cpu_list()
    first = busy_seconds(cpus)
    if first is None:
        return float(len(cpus))
    time.sleep(seconds)
    busy = busy_seconds(cpus) - first
    return max(0.0, len(cpus) - busy / seconds)


def slots(threads_each: int, free: float) -> int:
    """How many candidates of ``threads_each`` threads run side by side on ``free`` cores (at least
    1; 0 threads, each taking the free cores: 1)."""
    if threads_each == 0:
        return 1
    return max(1, math.floor((free + 0.25) / max(1, threads_each)))
