"""`convnlp bench`: the settings checked, the subjects built, every setting measured, the
results written (bench.json, bench.md, plots)."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from convnlp import peers
from convnlp.bench.harness import _runs, matmul_gflops, neighbours, run_setting
from convnlp.bench.profile import profile_shares, profile_table
from convnlp.bench.subjects import (
    Subject,
    _peers,
    _trained,
    defaults,
    matched,
    size_key,
)
from convnlp.bench.tables import _plots, _setting, overview, summarize, table
from convnlp.bench.workload import Workload
from convnlp.device import pick_device
from convnlp.errors import UserError
from convnlp.registry import ENCODERS
from convnlp.tasks import get_task, task_config

log = logging.getLogger("convnlp.bench")


RUNTIMES = (
    "torch",
    "onnx",
    "onnx-int8",
)  # what bench.checkpoints run under (convnlp export for ONNX)


def thread_counts(b) -> list[int]:
    """``bench.threads`` as numbers of threads (0: all cores)."""
    return [t or os.cpu_count() or 1 for t in b.threads]


def _check(b) -> None:
    for key in (
        "repetitions",
        "sentences",
        "latency_sentences",
        "batch_tokens",
        "length_tokens",
        "batch_sentences",
    ):
        if not isinstance(b[key], int) or isinstance(b[key], bool) or b[key] < 1:
            raise UserError(f"bench.{key}={b[key]!r} must be a whole number, at least 1")
    if not isinstance(b.seconds, (int, float)) or b.seconds <= 0:
        raise UserError(f"bench.seconds={b.seconds!r} must be a positive number")
    for key, least, note in (
        ("threads", 0, " (0: all cores)"),
        ("lengths", 2, ", at least 2"),
        ("neighbours", 0, " (0: alone)"),
    ):
        if any(not isinstance(v, int) or isinstance(v, bool) or v < least for v in b[key]):
            raise UserError(f"bench.{key}={list(b[key])} must be a list of whole numbers{note}")
    if not b.neighbours:
        raise UserError("bench.neighbours is empty: [0] measures alone")
    for key, values in (
        ("threads", thread_counts(b)),
        ("neighbours", list(b.neighbours)),
        ("encoders", list(b.encoders)),
    ):
        if len(set(values)) < len(values):
            raise UserError(
                f"bench.{key}={list(b[key])} names a setting twice"
                + (f" (0 is all {os.cpu_count()} cores)" if key == "threads" else "")
            )
    unknown = [p for p in b.peers if p not in peers.KNOWN]
    if unknown:
        raise UserError(f"bench.peers: unknown peer(s) {', '.join(map(str, unknown))}; known: {', '.join(peers.KNOWN)}")
    if not b.encoders:
        raise UserError("bench.encoders is empty: name at least one encoder")
    unknown = [e for e in b.encoders if e not in ENCODERS]
    if unknown:
        raise UserError(
            f"bench.encoders: unknown encoder(s) {', '.join(unknown)}; choose from {', '.join(ENCODERS.names())}"
        )
    if b.baseline and b.baseline not in b.encoders:
        raise UserError(f"bench.baseline={b.baseline} is not among bench.encoders ({', '.join(b.encoders)})")
    if b.match not in (None, "parameters", "flops"):
        raise UserError(f"bench.match={b.match!r} must be parameters, flops or null (each encoder at its defaults)")
    if b.match and not b.baseline:
        raise UserError("bench.match needs bench.baseline: the encoder whose size the others are matched to")
    unknown = [r for r in b.runtimes if r not in RUNTIMES]
    if unknown or not b.runtimes or len(set(b.runtimes)) < len(b.runtimes):
        raise UserError(
            f"bench.runtimes={list(b.runtimes)} must name each of {', '.join(RUNTIMES)} at most once, at least one"
        )
    if list(b.runtimes) != ["torch"] and not b.checkpoints:
        raise UserError(f"bench.runtimes={list(b.runtimes)} runs trained checkpoints: give bench.checkpoints=[DIR,...]")
    if list(b.runtimes) != ["torch"] and b.device == "cuda":
        raise UserError(f"bench.runtimes={list(b.runtimes)}: ONNX Runtime runs on the CPU here; set bench.device=cpu")


def build_subjects(
    cfg: DictConfig, work: Workload, task, task_cfg: dict, device: torch.device, run_dir: Path
) -> tuple[list, list, list, dict]:
    """The encoders (and, with bench.match, each resized to the baseline), then the trained
    checkpoints and the peers: (all subjects, the encoders', the trained ones, a line per
    checkpoint and peer)."""
    b, base = cfg.bench, cfg.bench.baseline or cfg.bench.encoders[0]
    sizes = (task_cfg, work.tokenizer.get_vocab_size(), len(work.labels))
    encoders = [Subject(name, defaults(name), task, *sizes, device, b.lr, b.amp) for name in b.encoders]
    if b.match:  # each encoder again, resized to the baseline's parameters or FLOPs
        target = next(s for s in encoders if s.name == base)
        target = target.encoder_parameters if b.match == "parameters" else target.flops_per_symbol
        encoders += [
            Subject(
                f"{name}@{b.match}",
                matched(name, target, b.match, *sizes),
                task,
                *sizes,
                device,
                b.lr,
                b.amp,
            )
            for name in b.encoders
            if name != base
        ]
    for subject in encoders:
        subject.work = work.work
    trained, trained_lines = _trained(cfg, work, device, run_dir)
    peer_subjects, peer_lines = _peers(cfg, work, device)
    return encoders + trained + peer_subjects, encoders, trained, {**trained_lines, **peer_lines}


def measure(
    cfg: DictConfig,
    subjects: list,
    measures: list[str],
    threads_list: list[int],
    words_per_symbol: float,
    device: torch.device,
    run_dir: Path,
) -> tuple[list, dict]:
    """Every setting (thread count, busy neighbours), every repetition: the raw rows and the
    machine's matmul peak per thread count. bench.partial.json keeps what is measured so far."""
    b, raw, peaks = cfg.bench, [], {}
    others = any(not isinstance(s, Subject) for s in subjects)  # checkpoints, peers: their own threads
    for threads in threads_list:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        with peers.thread_limit(threads) if others else nullcontext():
            peaks[threads] = matmul_gflops(device)
            for subject in subjects:
                if hasattr(subject, "set_threads"):
                    subject.set_threads(threads)
            for subject in subjects:  # warm-up: first calls allocate and pick kernels
                subject.infer(subject.work["infer"][0][0])
                if _runs(subject, "train"):
                    subject.train(subject.work["train"][0][0])
            for n in b.neighbours:
                here = measures if n == 0 else [m for m in measures if "@" not in m]  # lengths: alone only
                total = b.repetitions * sum(_runs(s, m) for m in here for s in subjects)
                bar = tqdm(
                    total=total,
                    desc=f"bench, {_setting(threads, n)}",
                    leave=False,
                    disable=None if b.progress else True,
                    dynamic_ncols=True,
                )
                with neighbours(n), bar:
                    run_setting(subjects, here, threads, n, b, words_per_symbol, raw, bar)
                # every setting so far, in case the run is stopped: nothing measured is lost
                (run_dir / "bench.partial.json").write_text(json.dumps({"peak_gflops": peaks, "raw": raw}))
    return raw, peaks


def profile(cfg: DictConfig, encoders: list, trained: list, threads: int, run_dir: Path) -> dict:
    """bench.profile=true, after the timings (so the profiler cannot slow them): where each
    encoder's batched inference, and a trained tagger's whole prediction, spends its time."""
    profiles = {}
    torch.set_num_threads(threads)
    for subject in encoders:
        profiles[subject.name], ops = profile_shares(subject, subject.work["infer"])
        (run_dir / f"profile_{subject.name}.txt").write_text(ops)
    for subject in [t for t in trained if t.runtime == "torch"] if cfg.task.name == "tagging" else []:
        batches = [b for inputs, _ in subject.work["infer"] for b in subject.batches(inputs)]
        profiles[subject.name], ops = profile_shares(subject, batches, run=subject.network)
        profiles[subject.name]["stages"] = subject.stages(subject.work["infer"])
        (run_dir / f"profile_{subject.name}.txt").write_text(ops)
    return profiles


def bench_command(cfg: DictConfig, run_dir: Path) -> dict:
    b = cfg.bench
    _check(b)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    task, task_cfg = get_task(cfg.task.name), task_config(config)
    base, threads_list = b.baseline or b.encoders[0], thread_counts(b)
    device = pick_device(b.device)
    if device.type == "cuda" and b.amp and not torch.cuda.is_bf16_supported():
        raise UserError("bench.amp: this GPU has no bf16; set bench.amp=false")
    torch.manual_seed(cfg.seed)

    work = Workload(cfg, task, task_cfg, device)
    subjects, encoders, trained, extra_lines = build_subjects(cfg, work, task, task_cfg, device, run_dir)
    measures = ["infer", "latency", "train"] + [f"{kind}@{t}" for t in work.lengths for kind in ("infer", "train")]
    log.info(
        "bench: %s on %s, %s, threads %s, busy neighbours %s, %d repetitions of %s",
        cfg.task.name,
        cfg.data.name,
        ", ".join(s.name for s in subjects),
        threads_list,
        list(b.neighbours),
        b.repetitions,
        ", ".join(measures),
    )
    words_per_symbol = work.words / max(work.symbols, 1)
    raw, peaks = measure(cfg, subjects, measures, threads_list, words_per_symbol, device, run_dir)
    profiles = profile(cfg, encoders, trained, threads_list[0], run_dir) if b.profile and device.type == "cpu" else {}

    rows = summarize(raw, base)
    info = {s.name: {"parameters": s.parameters, "flops_per_symbol": s.flops_per_symbol} for s in subjects}
    for s in encoders:
        key = size_key(s.name.partition("@")[0])
        info[s.name].update(encoder_parameters=s.encoder_parameters, size=f"{key}={s.encoder[key]}")
    for other in subjects[len(encoders) :]:
        info[other.name].update(description=other.description, accuracy=getattr(other, "accuracy_on_eval", None))
    notes = "".join(f"{name}: {line}\n" for name, line in extra_lines.items())
    if profiles:
        notes += "\n" + profile_table(profiles, threads_list[0])
    summary = overview(rows, info, peaks, base) + notes
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "task": cfg.task.name,
        "data": cfg.data.name,
        "device": str(device),
        "threads": threads_list,
        "neighbours": list(b.neighbours),
        "repetitions": b.repetitions,
        "baseline": base,
        "peak_gflops": peaks,
        "encoders": info,
        "peers": extra_lines,
        "profile": profiles,
        "eval_split": work.eval_name,
        "words_per_symbol": words_per_symbol,
        "summary": rows,
        "raw": raw,
        "config": config,
    }
    (run_dir / "bench.json").write_text(json.dumps(result, indent=1))
    (run_dir / "bench.partial.json").unlink(missing_ok=True)
    (run_dir / "bench.md").write_text(summary + "\n" + table(rows, info, peaks, base))
    _plots(run_dir, rows, threads_list, [s.name for s in encoders], work.lengths, base)
    print(summary, end="")  # bench.md adds every measurement
    log.info("bench: wrote %s", run_dir / "bench.json")
    return result
