"""The CUDA path in one command, on a machine with an NVIDIA GPU: one line per check, PASS or FAIL.

    python scripts/gpu_check.py                 # all checks, in outputs/gpu_check/<time>/
    python scripts/gpu_check.py --only ddp      # some of them: train, api, resume, ddp, bench
    python scripts/gpu_check.py --device cpu    # the same checks on the CPU (gloo): the script's own test

Checks (each a real `convnlp` command on the offline CMUdict data, a few hundred steps at most):
  train-<task>   every task trains with AMP (bf16 where supported) on cuda, loss finite, a score
  api-<task>     convnlp.load(<that run>, device="cuda").predict(...) gives the CPU's predictions
  resume         a run stopped at step 20 continues from last/ to step 40 (trainer.resume=DIR)
  ddp-<N>        torchrun with 1 process (and with every GPU, where there are several): NCCL DDP
  bench          `convnlp bench` on cuda: the tagger's encoders, inference and training symbols/s
The lines and the figures go to standard output and to gpu_check.json. Exit status 1 if a check
failed, 2 without a CUDA device. Run it whenever a GPU is at hand and quote its lines with the date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = ["trainer.max_steps=60", "trainer.eval_every=30", "trainer.progress=false", "trainer.amp=true"]
DEVICE = "cuda"
TASKS = {
    "tagging": [],
    "classification": ["task=classification"],
    "generation": ["task=generation", "decoder=deconv"],
    "generation_convs2s": ["task=generation", "decoder=convs2s"],  # beam search on the device
    "generation_lstm": ["task=generation", "decoder=lstm"],
}


def run(command: list[str], cwd: Path, timeout: float = 900) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code, out = 124, f"timed out after {timeout:.0f} s: {e}"
    return code, out, time.perf_counter() - start


def newest(directory: Path) -> Path:
    return max(directory.iterdir(), key=lambda p: p.stat().st_mtime)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def check_train(name: str, overrides: list[str], cwd: Path) -> dict:
    code, out, seconds = run(
        [
            sys.executable,
            "-m",
            "convnlp",
            "train",
            *overrides,
            *STEPS,
            f"trainer.device={DEVICE}",
            f"hydra.run.dir=outputs/{name}",
        ],
        cwd,
    )
    if code:
        return {"ok": False, "detail": f"exit {code}: {last_line(out)}"}
    metrics = json.loads((cwd / "outputs" / name / "metrics.json").read_text())
    score = metrics["validation"][metrics["selected_by"]]
    return {
        "ok": metrics["steps"] == 60 and score == score,
        "seconds": seconds,
        "detail": f"{metrics['steps']} steps, validation {metrics['selected_by']} {score:.4f}, "
        f"{metrics['train_symbols_per_s']:,.0f} symbols/s, {seconds:.0f} s",
        "metrics": {k: metrics[k] for k in ("steps", "selected_by", "train_symbols_per_s", "validation")},
    }


API_TEXTS = {
    "tagging": ["K AE T", "HH AH L OW", "K AH N V AH L UW SH AH N"],
    "classification": ["cat", "hello", "convolution", "unbelievable"],
    "generation": ["cat", "hello", "convolution"],
    "generation_convs2s": ["cat", "hello", "convolution"],
    "generation_lstm": ["cat", "hello", "convolution"],
}


def check_api(task: str, cwd: Path) -> dict:
    """The Python API on the device, against the same checkpoint on the CPU: the same labels."""
    import convnlp

    run = cwd / "outputs" / f"train_{task}"
    if not (run / "best").is_dir():
        return {"ok": False, "detail": f"needs the train-{task} check's run ({run})"}
    texts = API_TEXTS[task]
    here = convnlp.load(run, device=DEVICE).predict(texts)
    cpu = convnlp.load(run, device="cpu").predict(texts)
    labels = [(r.get("tags"), r.get("label"), r.get("output")) for r in here]
    same = labels == [(r.get("tags"), r.get("label"), r.get("output")) for r in cpu]
    return {
        "ok": same and len(here) == len(texts),
        "detail": f"{len(texts)} texts on {DEVICE}: "
        + ("the CPU's predictions" if same else f"{labels} against the CPU's {cpu}"),
    }


def check_resume(cwd: Path) -> dict:
    base = [
        sys.executable,
        "-m",
        "convnlp",
        "train",
        *STEPS[2:],
        f"trainer.device={DEVICE}",
        "trainer.eval_every=10",
        "optim.schedule=constant",
    ]
    code, out, _ = run([*base, "trainer.max_steps=20", "hydra.run.dir=outputs/resume_first"], cwd)
    if code:
        return {"ok": False, "detail": f"first run: exit {code}: {last_line(out)}"}
    code, out, seconds = run(
        [*base, "trainer.max_steps=40", "trainer.resume=outputs/resume_first", "hydra.run.dir=outputs/resume_second"],
        cwd,
    )
    if code:
        return {"ok": False, "detail": f"resumed run: exit {code}: {last_line(out)}"}
    steps = json.loads((cwd / "outputs" / "resume_second" / "metrics.json").read_text())["steps"]
    resumed = "at step 20" in out
    return {"ok": resumed and steps == 40, "detail": f"resumed at step 20: {resumed}, ended at step {steps}"}


def check_ddp(processes: int, cwd: Path) -> dict:
    name = f"ddp_{processes}"
    code, out, seconds = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "convnlp",
            "train",
            *STEPS,
            f"trainer.device={DEVICE}",
            f"hydra.run.dir=outputs/{name}",
        ],
        cwd,
    )
    if code:
        return {"ok": False, "detail": f"exit {code}: {last_line(out)}"}
    metrics = json.loads((cwd / "outputs" / name / "metrics.json").read_text())
    ok = metrics.get("processes") == processes and metrics.get("ddp_backend") == (
        "nccl" if DEVICE == "cuda" else "gloo"
    )
    return {
        "ok": ok,
        "detail": f"{metrics.get('processes')} processes, {metrics.get('ddp_backend')}, "
        f"{metrics['train_symbols_per_s']:,.0f} symbols/s, {seconds:.0f} s",
        "metrics": {
            k: metrics.get(k) for k in ("processes", "ddp_backend", "train_symbols_per_s", "global_batch_tokens")
        },
    }


def check_bench(cwd: Path) -> dict:
    code, out, seconds = run(
        [
            sys.executable,
            "-m",
            "convnlp",
            "bench",
            "task=tagging",
            f"bench.device={DEVICE}",
            "bench.threads=[1]",
            "bench.neighbours=[0]",
            "bench.repetitions=3",
            "bench.lengths=[256,1024]",
            "bench.progress=false",
            "hydra.run.dir=outputs/bench",
        ],
        cwd,
    )
    if code:
        return {"ok": False, "detail": f"exit {code}: {last_line(out)}"}
    table = cwd / "outputs" / "bench" / "bench.json"
    return {"ok": table.is_file(), "detail": f"{table} ({seconds:.0f} s)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["train", "api", "resume", "ddp", "bench"])
    parser.add_argument("--output", default=None, help="directory (default outputs/gpu_check/<time>)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here; nothing was checked (--device cpu runs the checks on the CPU)",
            file=sys.stderr,
        )
        return 2
    out = Path(args.output or f"outputs/gpu_check/{time.strftime('%Y-%m-%d_%H-%M-%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if DEVICE == "cuda" else 1
    machine = (
        f"{gpus} x {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}"
        if DEVICE == "cuda"
        else f"CPU ({os.cpu_count()} cores)"
    )
    header = f"gpu_check {time.strftime('%Y-%m-%d %H:%M')}: {machine}, torch {torch.__version__}"
    print(header, flush=True)
    checks = []
    if "train" in args.only:
        checks += [
            (f"train-{task}", lambda task=task: check_train(f"train_{task}", TASKS[task], out)) for task in TASKS
        ]
    if "api" in args.only:
        checks += [(f"api-{task}", lambda task=task: check_api(task, out)) for task in TASKS]
    if "resume" in args.only:
        checks.append(("resume", lambda: check_resume(out)))
    if "ddp" in args.only:
        checks += [(f"ddp-{n}", lambda n=n: check_ddp(n, out)) for n in sorted({1, gpus})]
    if "bench" in args.only:
        checks.append(("bench", lambda: check_bench(out)))
    results = {"header": header}
    for name, check in checks:
        try:
            result = check()
        except Exception as e:  # a check's own failure is a FAIL line, not the end of the others
            result = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
        results[name] = result
        print(f"{'PASS' if result['ok'] else 'FAIL'} {name:<22} {result['detail']}", flush=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    print(f"gpu_check: {sum(r['ok'] for k, r in results.items() if k != 'header')}/{len(checks)} passed; {out}")
    return 0 if all(r["ok"] for k, r in results.items() if k != "header") else 1


if __name__ == "__main__":
    os.environ.setdefault("CONVNLP_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"))
    sys.exit(main())
