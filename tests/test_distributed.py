"""Beyond one process: real torchrun worker processes (DDP, gloo on the CPU), a real submitit_local
sweep, a real Optuna study in SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from convnlp.distributed import SINGLE, World, shard
from tests.conftest import TINY, conll_args, convnlp, run_dirs

pytestmark = pytest.mark.slow

# no dropout: the two processes and one process draw their dropout masks from different streams
EXACT = ["task.embedding_dropout=0", "task.word_dropout=0", "encoder.dropout=0", "trainer.threads=1"]


def torchrun(
    *args: str, cwd: Path, nproc: int = 2, check: bool = True, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "convnlp",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"torchrun convnlp {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def loss_curve(run: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [(s.step, s.value) for s in events.Scalars("train/loss")]


def test_every_rank_takes_the_same_steps_and_together_all_batches():
    batches = [[i] for i in range(7)]
    two = [shard(batches, World(rank=r, size=2, backend="gloo"), 1) for r in range(2)]
    assert [len(s) for s in two] == [4, 4]  # 7 batches: the last step repeats the first batch
    taken = [b for step in zip(*two) for rank in step for b in rank]
    assert taken == [[0], [1], [2], [3], [4], [5], [6], [0]]
    # one process with accumulate=2 takes the same batches per step as two processes
    one = shard(batches, SINGLE, 2)
    assert one == [[two[0][step][0], two[1][step][0]] for step in range(4)]
    assert shard([[0]], World(rank=1, size=4, backend="gloo"), 2) == [[[0], [0]]]  # fewer batches than ranks
    assert shard(batches, SINGLE, 1) == [[b] for b in batches]  # one process: the batches as they are


def test_two_processes_train_the_same_weights_as_one_accumulating_their_global_batch(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        *EXACT,
        "trainer.max_steps=20",
        "trainer.eval_every=10",
        "trainer.log_every=1",
        "seed=3",
    ]
    (tmp_path / "ddp").mkdir()
    result = torchrun("train", *args, cwd=tmp_path / "ddp")
    (ddp,) = run_dirs(tmp_path / "ddp")  # one run directory, written by rank 0 alone
    assert "on 2 processes (gloo, cpu)" in result.stdout
    assert "global batch: 2 x 600 symbols" in result.stdout
    assert result.stdout.count("test (best model)") == 1 and "[rank 1]" not in result.stdout + result.stderr
    assert len(list((ddp / "tensorboard").glob("events.*"))) == 1
    assert sorted(p.name for p in (ddp / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "[convnlp.train]" in (ddp / "train.log").read_text()
    metrics = json.loads((ddp / "metrics.json").read_text())
    assert (metrics["processes"], metrics["ddp_backend"], metrics["global_batch_tokens"]) == (2, "gloo", 1200)

    (tmp_path / "one").mkdir()
    convnlp("train", *args, "trainer.accumulate=2", cwd=tmp_path / "one")
    (one,) = run_dirs(tmp_path / "one")
    # the same global batch, the same steps: the same weights, bit for bit (tolerance 0)
    a, b = (load_file(run / "last" / "model.safetensors") for run in (ddp, one))
    assert all(bool((a[k] == b[k]).all()) for k in a)
    curves = loss_curve(ddp), loss_curve(one)
    assert [s for s, _ in curves[0]] == [s for s, _ in curves[1]] == list(range(1, 21))
    assert max(abs(x - y) for (_, x), (_, y) in zip(*curves)) < 1e-6  # the mean of two losses, summed apart
    test = json.loads((one / "metrics.json").read_text())["test"]
    assert {k: v for k, v in test.items() if k != "words_per_s"} == {
        k: v for k, v in metrics["test"].items() if k != "words_per_s"
    }


def _step(metrics: Path) -> int:
    try:
        return json.loads(metrics.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def _start_torchrun(cwd: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "convnlp",
            "train",
            *args,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _wait_for_checkpoint(cwd: Path, step: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        metrics = list(cwd.glob("outputs/train/*/last/metrics.json"))
        if metrics and _step(metrics[0]) >= step:
            return
        time.sleep(0.01)
    raise AssertionError(f"no last/ at step {step}: {process.poll()}")


def test_a_killed_torchrun_job_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        "encoder.width=48",
        "trainer.threads=1",
        "trainer.max_steps=100",
        "trainer.checkpoint_every=10",
        "trainer.eval_every=50",
        "trainer.patience=0",
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "killed").mkdir()
    torchrun("train", *args, cwd=tmp_path / "full")
    (full,) = run_dirs(tmp_path / "full")

    process = _start_torchrun(tmp_path / "killed", args)
    _wait_for_checkpoint(tmp_path / "killed", 10, process)
    process.send_signal(signal.SIGTERM)  # as a scheduler stops a job: torchrun passes it to its workers
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    (killed,) = run_dirs(tmp_path / "killed")
    state = json.loads((killed / "last" / "metrics.json").read_text())
    assert not state["finished"] and 10 <= state["step"] < 100, state
    assert "terminated by SIGTERM; continue it with trainer.resume=true" in (killed / "train.log").read_text()

    time.sleep(1.1)  # a new run directory name
    result = torchrun("train", *args, "trainer.resume=true", cwd=tmp_path / "killed")
    assert f"resumed from {killed / 'last'} at step {state['step']}" in result.stdout
    (resumed,) = [d for d in run_dirs(tmp_path / "killed") if d != killed]
    a, b = (load_file(run / "last" / "model.safetensors") for run in (full, resumed))
    assert all(bool((a[k] == b[k]).all()) for k in a), "the resumed job diverged from the uninterrupted one"
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 100

    # another global batch is not a continuation: refused in one line, with what would do
    other = convnlp(
        "train", *args, "trainer.max_steps=160", f"trainer.resume={resumed}", cwd=tmp_path / "killed", check=False
    )
    assert other.returncode == 2 and other.stderr.strip() == (
        f"convnlp: error: trainer.resume: {resumed / 'last'} took 2 batches per step (processes x trainer.accumulate: "
        "2 x 1), this run 1 (1 x 1); keep the global batch (e.g. trainer.accumulate=2 with 1 process), or start from "
        f"its weights with a new schedule: trainer.init={resumed}"
    )
    # the same global batch on another number of processes (here one, without torchrun) goes on, and says so
    time.sleep(1.1)
    one = convnlp(
        "train",
        *args,
        "trainer.max_steps=160",
        "trainer.accumulate=2",
        f"trainer.resume={resumed}",
        cwd=tmp_path / "killed",
    )
    assert "the run it continues had 2 process(es), this one 1: the same global batch and schedule" in one.stdout
    final = max(run_dirs(tmp_path / "killed"))
    assert json.loads((final / "metrics.json").read_text())["steps"] == 160


def _ranks(process: subprocess.Popen) -> dict[str, int]:
    """torchrun's worker processes by their RANK."""
    ranks = {}
    for child in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split():
        environ = dict(v.split("=", 1) for v in Path(f"/proc/{child}/environ").read_text().split("\0") if "=" in v)
        ranks[environ.get("RANK")] = int(child)
    return ranks


def _proc_status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # gone and reaped
        return {"State": "X (gone)"}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.01)


def _sigterm_pending(pid: int) -> bool:
    status = _proc_status(pid)
    bit = 1 << (signal.SIGTERM - 1)
    return any(int(status.get(key, "0"), 16) & bit for key in ("ShdPnd", "SigPnd"))


def _convnlp_error(stderr: str) -> str:
    """The one line of convnlp's on standard error (the whole of it shown when there is not one)."""
    lines = [line for line in stderr.splitlines() if line.startswith("convnlp: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# When one rank dies, rank 0 learns it one of two ways, whichever comes first: its next collective
# fails (the peer's sockets are closed), or torchrun, which watches its workers, stops it with
# SIGTERM. Each way is forced below by holding the other one back with SIGSTOP, so that both
# messages are checked on every run, whatever the timing.


def test_a_rank_that_dies_is_named_by_rank_0_when_its_collective_fails_first(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.threads=1",
        "trainer.max_steps=100000",
        "trainer.checkpoint_every=5",
        "trainer.patience=0",
    ]
    process = _start_torchrun(tmp_path, args)
    _wait_for_checkpoint(tmp_path, 5, process)
    ranks = _ranks(process)
    os.kill(process.pid, signal.SIGSTOP)  # torchrun cannot stop rank 0 before its collective fails
    try:
        start = time.time()
        os.kill(ranks["1"], signal.SIGKILL)  # the kernel's OOM killer, a lost GPU
        _wait_until(lambda: _proc_status(ranks["0"])["State"][0] in "ZX", "rank 0 to exit on its own")
        assert time.time() - start < 60
    finally:
        os.kill(process.pid, signal.SIGCONT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    line = _convnlp_error(stderr)
    assert line.startswith("convnlp: error: rank 0 of 2: another process of this training is gone (gloo: "), stderr
    assert line.endswith("); torchrun names the one that failed; continue with trainer.resume=true"), stderr
    assert "Error executing job" not in stderr  # no traceback of convnlp's (torchrun prints its summary)


def test_a_rank_that_dies_is_named_by_rank_0_when_torchrun_stops_it_first(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.threads=1",
        "trainer.max_steps=100000",
        "trainer.checkpoint_every=5",
        "trainer.patience=0",
    ]
    process = _start_torchrun(tmp_path, args)
    _wait_for_checkpoint(tmp_path, 5, process)
    ranks = _ranks(process)
    os.kill(ranks["0"], signal.SIGSTOP)  # rank 0 cannot reach a collective before torchrun's SIGTERM
    try:
        start = time.time()
        os.kill(ranks["1"], signal.SIGKILL)
        _wait_until(lambda: _sigterm_pending(ranks["0"]), "torchrun's SIGTERM to rank 0")
        assert time.time() - start < 60
    finally:
        os.kill(ranks["0"], signal.SIGCONT)  # the pending SIGTERM is handled before anything else
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    line = _convnlp_error(stderr)
    assert line == (
        "convnlp: error: rank 0 of 2 stopped by SIGTERM (the job was stopped, or torchrun stopped all "
        "processes because one failed: then its error is above); continue with trainer.resume=true"
    ), stderr
    assert "Error executing job" not in stderr


def test_a_time_budget_stops_every_rank_at_the_same_step_by_rank_0s_clock(tmp_path, conll_files):
    result = torchrun(
        "train",
        *conll_args(conll_files),
        *TINY,
        "trainer.max_minutes=0.05",
        "trainer.patience=0",
        "trainer.threads=1",
        cwd=tmp_path,
    )
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stop_reason"] == "trainer.max_minutes=0.05 reached" and metrics["processes"] == 2
    assert "stopped: trainer.max_minutes=0.05 reached" in result.stdout


def test_errors_of_a_distributed_start_are_one_line(tmp_path):
    partial = convnlp("train", "trainer.max_steps=1", cwd=tmp_path, check=False, env={"WORLD_SIZE": "2"})
    assert partial.returncode == 2 and partial.stderr.strip() == (
        "convnlp: error: data-parallel training: WORLD_SIZE=2 is set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT "
        "is not; start it with torchrun (torchrun --nproc_per_node=N -m convnlp train ...), which sets them all"
    )
    nccl = torchrun(
        "train",
        "trainer.max_steps=1",
        "trainer.device=cpu",
        "trainer.ddp_backend=nccl",
        cwd=tmp_path,
        nproc=1,
        check=False,
    )
    assert nccl.returncode != 0
    assert "convnlp: error: trainer.ddp_backend=nccl needs CUDA devices, and this run trains on the CPU" in nccl.stderr
    sweep = torchrun("train", "-m", "encoder=plain,dilated", cwd=tmp_path, nproc=1, check=False)
    assert "convnlp: error: torchrun trains one model; a sweep (-m) launches its jobs itself" in sweep.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_submitit_local_sweep_runs_each_config_as_a_job(tmp_path, conll_files):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    # each job two tasks, which train its model together (DDP over the job's tasks, as on SLURM)
    result = convnlp(
        "train",
        "-m",
        "hydra/launcher=local",
        "hydra.launcher.tasks_per_node=2",
        *conll_args(conll_files),
        *TINY,
        "seed=1,2",
        "trainer.max_steps=5",
        cwd=tmp_path,
    )
    (sweep,) = (tmp_path / "outputs" / "train-multirun").iterdir()
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert [job.name[:2] for job in jobs] == ["0_", "1_"] and all(
        job.name.endswith(f"seed={n}") or "~" in job.name for n, job in zip((1, 2), jobs)
    ), result.stdout
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert (metrics["steps"], metrics["processes"], metrics["ddp_backend"]) == (5, 2, "gloo")
    jobs_logs = [d for d in (sweep / ".submitit").iterdir() if list(d.glob("*_log.out"))]
    assert len(jobs_logs) == 2 and all(len(list(d.glob("*_log.out"))) == 2 for d in jobs_logs)  # 2 jobs x 2 tasks
    report = convnlp("report", str(sweep), cwd=tmp_path)
    assert "seed=1" in report.stdout and "seed=2" in report.stdout


def test_an_optuna_study_persists_in_sqlite_and_continues(tmp_path, conll_files):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = [
        "-m",
        "hparams_search=tagger",
        *conll_args(conll_files),
        "trainer.max_steps=8",
        "trainer.progress=false",
        "trainer.batch_tokens=600",
        "trainer.threads=1",
    ]
    convnlp("train", *args, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    time.sleep(1.1)  # a new sweep directory
    convnlp("train", *args, "hydra.sweeper.n_trials=1", cwd=tmp_path)  # the same study, one more trial
    import optuna

    study = optuna.load_study(study_name="tagger", storage=f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    sweeps = sorted((tmp_path / "outputs" / "train-multirun").iterdir())
    values = []
    for sweep in sweeps:
        for job in sorted(d for d in sweep.iterdir() if (d / "metrics.json").is_file()):
            values.append(json.loads((job / "metrics.json").read_text())["validation"]["f1"])
    assert [t.value for t in study.trials] == pytest.approx(values)  # each trial's value: its validation F1
    assert set(study.trials[0].params) == {
        "encoder.width",
        "encoder.blocks",
        "encoder.dropout",
        "task.embedding_dim",
        "task.word_layers",
        "optim.lr",
    }
    report = convnlp("report", "outputs/optuna.db", cwd=tmp_path)
    assert f"study 'tagger' (maximize): 3 trials, 3 complete; best: trial {study.best_trial.number}" in report.stdout
    best_row = report.stdout.splitlines()[4]
    assert best_row.startswith(f"| * | {study.best_trial.number} | COMPLETE | {study.best_value:.4f} |")
