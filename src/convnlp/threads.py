"""convnlp's CPU thread policy: as many threads as there are cores that other processes leave free.

torch starts one thread per core and its OpenMP threads spin at every barrier, waiting for each
other. Beside a busy neighbour on a 2-core machine, one of the two threads keeps losing its core,
and every parallel region waits for it: `convnlp bench` measured the default training at 2
threads beside one busy single-thread process at about half the speed of 1 thread (and a third
of 2 threads alone). So with ``trainer.threads=0`` (the default) training measures how many of
its cores other processes keep busy (``/proc/stat``, less this process's own CPU time), uses the
rest (at least 1, at most torch's default: ``OMP_NUM_THREADS`` or the cores), and checks again
every ``interval`` seconds, so a neighbour that starts or stops later is followed. It drops a
thread when the free cores fall half a core below its count, and takes one back only when
three quarters of a core more are free, so a load near the threshold does not flip it. A number in
``trainer.threads`` is used as it is (bit-identical reruns need a fixed thread count).
"""

from __future__ import annotations

import logging
import math
import os
import time

import torch

log = logging.getLogger(__name__)


def cpu_list() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def busy_seconds(cpus: list[int], path: str = "/proc/stat") -> float | None:
    """CPU seconds spent busy (not idle or waiting for I/O) on ``cpus`` since boot, all
    processes together; None where the kernel does not tell (not Linux)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted, ticks = {f"cpu{c}" for c in cpus}, 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            # user nice system idle iowait irq softirq steal (guest time is inside user already)
            values = [int(v) for v in fields[1:9]]
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ThreadPolicy:
    """``setting`` > 0: that many threads, always. 0: the free cores, checked every ``interval``
    seconds by ``update()`` (call it as often as convenient; it returns at once in between)."""

    def __init__(self, setting: int, interval: float = 30.0, cpus: list[int] | None = None, stat: str = "/proc/stat"):
        self.stat = stat  # the kernel's CPU counters (a test gives a file of its own)
        self.cpus = cpus or cpu_list()
        self.initial = torch.get_num_threads()
        self.cap = setting or self.initial
        self.interval = interval
        self.auto = setting == 0 and self.cap > 1
        if setting > 0:
            torch.set_num_threads(setting)
        self.history: list[tuple[float, int]] = []  # (seconds since the start, threads) at every change
        self._start = time.monotonic()
        self._mark = self._sample()
        if self.auto and self._mark[1] is None:
            self.auto = False  # no /proc/stat: torch's default

    def _sample(self) -> tuple[float, float | None, float]:
        return time.monotonic(), busy_seconds(self.cpus, self.stat), own_seconds()

    def others(self) -> float | None:
        """Cores other processes kept busy since the last check (a window of ``interval`` s)."""
        now = self._sample()
        wall = now[0] - self._mark[0]
        if now[1] is None or self._mark[1] is None or wall <= 0:
            return None
        busy = (now[1] - self._mark[1]) - (now[2] - self._mark[2])
        self._mark = now
        return max(0.0, busy / wall)

    def update(self, force: bool = False) -> int:
        """The thread count, changed when other processes' load has changed."""
        current = torch.get_num_threads()
        if not self.auto or (not force and time.monotonic() - self._mark[0] < self.interval):
            return current
        others = self.others()
        if others is None:
            return current
        free = len(self.cpus) - others
        want = current  # a margin each way, so that a load near half a core does not flip it every check
        if free < current - 0.5:
            want = max(1, math.floor(free + 0.5))
        elif free > current + 0.75:
            want = min(self.cap, math.floor(free + 0.25))
        if want != current or not self.history:
            if want != current:
                log.info(
                    "threads: %d -> %d (other processes keep %.1f of %d cores busy)",
                    current,
                    want,
                    others,
                    len(self.cpus),
                )
            torch.set_num_threads(want)
            self.history.append((round(time.monotonic() - self._start, 1), want))
        return want

    def start(self, level: int = logging.INFO) -> int:
        """The first choice, from the load since the policy was made (the data loading)."""
        threads = self.update(force=True)
        log.log(
            level,
            "threads: %d%s",
            threads,
            f" (threads=0: the cores other processes leave free, checked every {self.interval:g} s)"
            if self.auto
            else "",
        )
        return threads

    def summary(self) -> dict:
        """For metrics.json: the threads at the end and, chosen by the policy, every change."""
        return {"threads": torch.get_num_threads(), **({"thread_changes": self.history} if self.auto else {})}

    def restore(self) -> None:
        """torch's thread count as it was before (for a caller that goes on in this process)."""
        torch.set_num_threads(self.initial)
