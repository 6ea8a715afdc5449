"""Load figures of `convnlp serve`: concurrent clients of one-sentence requests against `convnlp
predict` on the same sentences as one batch, and a soak.

    python scripts/serve_load.py --checkpoint outputs/ud_tagger --threads 1 \\
        --data ../shared/datasets/ud_en_ewt/test.conllu --json docs/results/serve_load.json

Starts the server itself (``convnlp serve port=0 threads=N``, loopback only) unless ``--url``
names a running one. For each client count (``--clients``, default 1 8 64): every client keeps
one HTTP/1.1 connection and sends one sentence a request, one after another, until
``--requests`` requests or ``--seconds`` have gone by; requests/s, sentences/s, words/s and
p50/p95/p99 latency. Every answer is checked against `convnlp predict`'s record for that
sentence (so a lost, duplicated or wrong answer is counted), and so is every status (a 5xx is
counted). Then a soak of ``--soak-seconds`` at 8 clients with the server's memory (RSS) sampled
every few seconds. The baseline: `convnlp predict threads=N` on the same sentences written to a
file, words/s with its start-up time taken off (a run on one line measures it). Prints a table;
``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conllu

from convnlp.server.process import ServerProcess


def sentences_of(path: Path, limit: int) -> list[str]:
    """The sentences of a CoNLL-U file, tokens joined by spaces (multiword ranges left out)."""
    with open(path, encoding="utf-8") as f:
        return [" ".join(t["form"] for t in s if isinstance(t["id"], int)) for s in conllu.parse_incr(f) if len(s)][
            :limit
        ]


def predict_baseline(checkpoint: str, sentences: list[str], threads: int, copies: int, repetitions: int = 3) -> dict:
    """`convnlp predict` on ``copies`` x the sentences from a file: words/s without its start-up
    (the same command on one line), the median of ``repetitions`` interleaved pairs."""
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp, "one.txt"), Path(tmp, "many.txt")
        one.write_text(sentences[0] + "\n")
        many.write_text("".join(s + "\n" for s in sentences) * copies)
        times: dict[str, list[float]] = {"one": [], "many": []}
        for _ in range(repetitions):
            for name, path in (("one", one), ("many", many)):
                start = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-m", "convnlp", "predict", f"checkpoint={checkpoint}", f"threads={threads}",
                     "device=cpu", f"input={path}"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                times[name].append(time.perf_counter() - start)
                if name == "many":
                    records = [json.loads(line) for line in out.stdout.splitlines()[: len(sentences)]]
    words = sum(len(s.split()) for s in sentences) * copies
    rates = [words / max(m - o, 1e-9) for m, o in zip(times["many"], times["one"])]
    return {
        "records": records,
        "words": words,
        "seconds": times["many"],
        "startup_seconds": statistics.median(times["one"]),
        "words_per_s": statistics.median(rates),
        "words_per_s_each": rates,
        "words_per_s_with_startup": words / statistics.median(times["many"]),
    }


async def _request(reader, writer, host: str, body: bytes) -> tuple[int, bytes]:
    writer.write(
        b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), len(body), body)
    )
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status, length = int(status_line.split()[1]), 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def drive(host: str, port: int, sentences: list[str], expected: list[dict], clients: int,
                requests: int, seconds: float) -> dict:  # fmt: skip
    """``clients`` connections, one sentence a request, until ``requests`` or ``seconds``."""
    next_index, latencies, wrong, statuses, failed = 0, [], 0, {}, []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal next_index, wrong
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < requests and time.monotonic() < deadline:
                i, next_index = next_index % len(sentences), next_index + 1
                body = json.dumps({"texts": [sentences[i]]}).encode()
                start = time.perf_counter()
                try:
                    status, data = await _request(reader, writer, host, body)
                except (ConnectionError, asyncio.IncompleteReadError) as e:  # no answer: lost
                    failed.append(type(e).__name__)
                    return
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    (record,) = json.loads(data)["predictions"]
                    wrong += record != expected[i]
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    done = len(latencies)
    words = sum(len(sentences[i % len(sentences)].split()) for i in range(done))
    cuts = statistics.quantiles(latencies, n=100) if done > 1 else [float("nan")] * 99
    return {
        "clients": clients,
        "requests": done,
        "seconds": elapsed,
        "requests_per_s": done / elapsed,
        "sentences_per_s": done / elapsed,
        "words_per_s": words / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wrong_answers": wrong,
        "sent": next_index,
        "lost": len(failed),
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
    }


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def soak(host: str, port: int, pid: int | None, sentences, expected, seconds: float, every: float) -> dict:
    samples = []

    async def sample() -> None:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            samples.append((round(time.monotonic() - start, 1), rss_mib(pid) if pid else None))
            await asyncio.sleep(every)

    result, _ = await asyncio.gather(drive(host, port, sentences, expected, 8, 10**9, seconds), sample())
    memory = [m for _, m in samples if m is not None]
    return {
        **result,
        "rss_mib": samples,
        "rss_first_mib": memory[0] if memory else None,
        "rss_last_mib": memory[-1] if memory else None,
        "rss_max_mib": max(memory) if memory else None,
    }


def table(baseline: dict, levels: list[dict], soaked: dict | None) -> str:
    rows = [
        "| clients | requests | requests/s | words/s | vs predict | p50 ms | p95 ms | p99 ms | wrong | lost | 5xx |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [*levels, *([soaked] if soaked else [])]:
        rows.append(
            f"| {r['clients']}{' (soak)' if r is soaked else ''} | {r['requests']:,} | {r['requests_per_s']:,.0f} | "
            f"{r['words_per_s']:,.0f} | {r['words_per_s'] / baseline['words_per_s']:.2f}x | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['wrong_answers']} | {r['lost']} | {r['server_errors']} |"
        )
    rows.append(
        f"\n`convnlp predict` on the same sentences: {baseline['words_per_s']:,.0f} words/s without its "
        f"{baseline['startup_seconds']:.1f} s start-up ({baseline['words_per_s_with_startup']:,.0f} with it)"
    )
    if soaked and soaked["rss_first_mib"]:
        rows.append(
            f"soak: server RSS {soaked['rss_first_mib']:.0f} MiB at the start, {soaked['rss_last_mib']:.0f} at the "
            f"end, {soaked['rss_max_mib']:.0f} at most"
        )
    return "\n".join(rows)


def load(host: str, port: int, pid: int | None, sentences, expected, args) -> tuple[list[dict], dict | None]:
    levels = [asyncio.run(drive(host, port, sentences, expected, c, args.requests, args.seconds)) for c in args.clients]
    soaked = (
        asyncio.run(soak(host, port, pid, sentences, expected, args.soak_seconds, 5.0)) if args.soak_seconds else None
    )
    return levels, soaked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the served model (also what predict runs)")
    parser.add_argument("--data", type=Path, required=True, help="a CoNLL-U file: its sentences are the requests")
    parser.add_argument("--url", help="a running server (http://127.0.0.1:PORT); default: start one")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, default=20_000, help="per client count, at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="per client count, at most")
    parser.add_argument("--soak-seconds", type=float, default=180.0, help="0: no soak")
    parser.add_argument("--copies", type=int, default=8, help="predict's input: the sentences this many times")
    parser.add_argument("--limit", type=int, default=100_000, help="sentences read at most")
    parser.add_argument("--serve-args", nargs="*", default=[], help="more settings of the server it starts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sentences = sentences_of(args.data, args.limit)
    baseline = predict_baseline(args.checkpoint, sentences, args.threads, args.copies)
    expected = baseline.pop("records")
    if args.url:
        host, port = args.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        levels, soaked = load(host, int(port), None, sentences, expected, args)
        code = None
    else:
        serve = (f"checkpoint={args.checkpoint}", f"threads={args.threads}", *args.serve_args)
        with ServerProcess(Path("."), *serve) as server:
            levels, soaked = load(server.host, server.port, server.process.pid, sentences, expected, args)
            code = server.stop()
    print(table(baseline, levels, soaked))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "command": "python " + " ".join(sys.argv),
                    "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
                    "threads": args.threads,
                    "sentences": len(sentences),
                    "predict": baseline,
                    "levels": levels,
                    "soak": soaked,
                    "server_exit_status": code,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
