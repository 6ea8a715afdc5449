"""End-to-end runs of the real CLI in subprocesses, on tiny data and tiny models."""

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import (
    TINY,
    TINY_CLASSIFIER,
    TINY_GENERATOR,
    conll_args,
    convnlp,
    review_args,
    run_dirs,
    spelling_args,
)

pytestmark = pytest.mark.slow


def _step(metrics) -> int:
    """The step of a checkpoint's metrics.json, or -1 while a save is swapping it."""
    try:
        return json.loads(metrics.read_text())["step"]
    except (OSError, ValueError):
        return -1


def _uninterrupted(tmp_path, args: list[str]):
    """An uninterrupted run of ``args`` (its run directory), and an empty directory for the
    same run to be killed and resumed in."""
    full_cwd, killed_cwd = tmp_path / "full", tmp_path / "killed"
    full_cwd.mkdir()
    killed_cwd.mkdir()
    convnlp("train", *args, cwd=full_cwd)
    (full,) = run_dirs(full_cwd)
    return full, killed_cwd


def _kill_at_step(cwd, args: list[str], step: int):
    """Run `convnlp train` in ``cwd`` and SIGKILL it once its last/ holds ``step`` steps or more:
    the run directory, its last checkpoint (the previous version if the kill came mid-swap) and
    that checkpoint's metrics."""
    from convnlp import checkpoint

    process = subprocess.Popen(
        [sys.executable, "-m", "convnlp", "train", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = list(cwd.glob("outputs/train/*/last/metrics.json"))
        if metrics and _step(metrics[0]) >= step:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (killed,) = run_dirs(cwd)
    last = checkpoint.existing(killed / "last")
    return killed, last, json.loads((last / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, conll_files):
    """One real training run on the tiny BIO data; several tests read its outputs."""
    cwd = tmp_path_factory.mktemp("run")
    result = convnlp(
        "train", *conll_args(conll_files), *TINY, "trainer.max_epochs=30", "optim.warmup_steps=20", cwd=cwd
    )
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, result


def test_train_writes_a_complete_run_directory(trained):
    _, run_dir, result = trained
    for name in (
        "best/model.safetensors",
        "best/config.json",
        "best/tokenizer.json",
        "best/labels.json",
        "best/metrics.json",
        "last/training_state.pt",
        "metrics.json",
        "train.log",
        ".hydra/config.yaml",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.9  # the tiny data is learnable
    assert metrics["test"]["f1"] > 0.8  # BIO tags: seqeval entity F1 is reported
    assert json.loads((run_dir / "best" / "labels.json").read_text()) == ["B-LOC", "B-PER", "I-LOC", "O"]
    assert "data: whitespace-column files (data=conll)" in (run_dir / "train.log").read_text()


def test_tensorboard_events_hold_the_scalars(trained):
    _, run_dir, _ = trained
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "validation/accuracy",
        "validation/f1",
    } <= scalars
    assert {"grad_norm/encoder.project", "grad_norm/encoder.convs.0", "grad_norm/encoder.convs.1"} <= scalars
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses[-1] < losses[0]
    assert max(e.value for e in events.Scalars("train/lr")) <= 2e-3


def test_eval_reloads_the_checkpoint_and_matches_training(trained):
    cwd, run_dir, _ = trained
    result = convnlp("eval", f"checkpoint={run_dir / 'best'}", "data.split=test", cwd=cwd)
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    final = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert printed["accuracy"] == final["accuracy"] and printed["f1"] == final["f1"]
    assert printed["tokens"] == final["tokens"]


def test_predict_tags_every_line_and_every_word(trained, tmp_path):
    cwd, run_dir, _ = trained
    long_line = " ".join(["Alice met Bob in Paris ."] * 200)  # 1,200 words, past predict_max_chars
    text = "Alice met Bob in Paris .\n\nGrace visited New Oslo .\n" + long_line + "\n"
    result = convnlp("predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input=text)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(r["tokens"]) for r in rows] == [6, 0, 5, 1200]
    assert rows[0]["tags"] == ["B-PER", "O", "B-PER", "O", "B-LOC", "O"]
    assert rows[2]["tags"] == ["B-PER", "O", "B-LOC", "I-LOC", "O"]
    assert rows[3]["tags"] == rows[0]["tags"] * 200
    (tmp_path / "in.txt").write_text(text)
    convnlp(
        "predict",
        f"checkpoint={run_dir / 'best'}",
        f"input={tmp_path / 'in.txt'}",
        f"output={tmp_path / 'out.jsonl'}",
        cwd=cwd,
    )
    assert (tmp_path / "out.jsonl").read_text() == result.stdout
    bad = convnlp(
        "predict", f"checkpoint={run_dir / 'best'}", "output=/nonexistent/out.jsonl", cwd=cwd, input=text, check=False
    )
    assert (
        bad.returncode == 2
        and bad.stderr == "convnlp: error: /nonexistent/out.jsonl: cannot open (No such file or directory)\n"
    )
    latin = convnlp(
        "predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input="ok\ncaf\xe9 x\n".encode("latin-1"), check=False
    )
    assert (
        latin.returncode == 0 and "(first: <stdin>:2: cannot decode byte b'\\xe9' at column 4 as utf-8" in latin.stderr
    )


def test_predict_keeps_every_line_when_one_cannot_be_read(trained, tmp_path):
    """Issue 16: a bad byte on one line loses neither the lines before it nor those after it."""
    cwd, run_dir, _ = trained
    lines = [f"Alice met Bob in Paris {i} .".encode() for i in range(70)]
    lines[5] = b"Grace saw caf\xe9 ."  # latin-1, not utf-8
    lines[69] = b"Erin left \xff"
    stream = b"\n".join(lines) + b"\n"
    result = convnlp("predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input=stream)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 70 and [r["tokens"][5] for r in rows[:5]] == ["0", "1", "2", "3", "4"]
    assert rows[5] == {
        "tokens": None,
        "tags": None,
        "error": "line 6: cannot decode byte b'\\xe9' at column 14 as utf-8 (set encoding=...)",
    }
    assert rows[6]["tokens"][5] == "6" and rows[69]["error"].startswith("line 70: cannot decode byte b'\\xff'")
    assert "2 input line(s) could not be read, each has an error record (first: <stdin>:6:" in result.stderr
    # on_error=stop: the lines before the bad one are written, then one line names it
    stop = convnlp("predict", f"checkpoint={run_dir / 'best'}", "on_error=stop", cwd=cwd, input=stream, check=False)
    assert stop.returncode == 2 and len(stop.stdout.splitlines()) == 5
    assert stop.stderr.startswith("convnlp: error: <stdin>:6: cannot decode byte") and stop.stderr.count("\n") == 1
    # a reader that leaves early (| head -1) ends the command quietly, as for any Unix filter
    (tmp_path / "many.txt").write_bytes(b"Alice met Bob .\n" * 20000)
    piped = subprocess.run(
        f"{sys.executable} -m convnlp predict checkpoint={run_dir / 'best'} "
        f"input={tmp_path / 'many.txt'} 2>{tmp_path / 'err.txt'} | head -1",
        shell=True,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert json.loads(piped.stdout)["tags"] == ["B-PER", "O", "B-PER", "O"]
    assert (tmp_path / "err.txt").read_text() == ""


def test_runs_started_at_once_get_their_own_directories_and_a_failed_run_logs_why(tmp_path, conll_files):
    """Issue 16: three runs started in the same second share nothing; a failed run's train.log
    says why it failed."""
    args = [sys.executable, "-m", "convnlp", "train", *conll_args(conll_files), *TINY, "trainer.max_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [*args, f"seed={i}"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for i in range(3)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0, 0, 0]
    runs = run_dirs(tmp_path)
    assert len(runs) == 3
    assert sorted(json.loads((r / "best" / "config.json").read_text())["seed"] for r in runs) == [0, 1, 2]
    for run in runs:  # each log holds one run's lines
        assert (run / "train.log").read_text().count("training: ") == 1
    failed = convnlp("train", "data=conllu", f"data.train={tmp_path / 'missing.conllu'}", cwd=tmp_path, check=False)
    assert failed.returncode == 2
    (log,) = [r / "train.log" for r in run_dirs(tmp_path) if r not in runs]
    assert f"failed: {tmp_path / 'missing.conllu'}: no such file" in log.read_text()


def test_a_run_killed_before_its_first_evaluation_resumes_from_its_own_checkpoint(tmp_path, conll_files):
    """Issue 16: last/ is written on its own schedule (trainer.checkpoint_every steps here,
    trainer.checkpoint_minutes by default), not only at evaluations."""
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.batch_tokens=80",
        "trainer.max_epochs=1",
        "trainer.threads=1",
        "trainer.checkpoint_every=10",
    ]
    full, killed_cwd = _uninterrupted(tmp_path, args)
    steps = json.loads((full / "metrics.json").read_text())["steps"]
    assert steps > 40  # one epoch, evaluated once at its end

    killed, last, state = _kill_at_step(killed_cwd, args, 20)
    assert state["step"] < steps and not (killed / "best").exists(), "killed after its first evaluation"
    result = convnlp("train", *args, "trainer.resume=true", cwd=killed_cwd)
    assert f"resumed from {last} at step {state['step']}" in result.stdout
    resumed = [d for d in run_dirs(killed_cwd) if d != killed][0]
    a, b = load_file(full / "best" / "model.safetensors"), load_file(resumed / "best" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"


def test_resume_after_a_killed_run_gives_the_same_model(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.max_steps=300",
        "trainer.max_epochs=100",
        "trainer.eval_every=10",
        "trainer.threads=1",
        "trainer.patience=0",
    ]
    full, killed_cwd = _uninterrupted(tmp_path, args)

    killed, last, state = _kill_at_step(killed_cwd, args, 50)
    assert not state["finished"] and 50 <= state["step"] < 300, state

    result = convnlp("train", *args, "trainer.resume=true", cwd=killed_cwd)
    assert f"resumed from {last} at step {state['step']}" in result.stdout
    resumed = [d for d in run_dirs(killed_cwd) if d != killed][0]
    a = load_file(full / "last" / "model.safetensors")
    b = load_file(resumed / "last" / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a), "resumed run diverged from the uninterrupted one"
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 300
    # the interrupted run was resumed once: resume=true does not pick it again
    again = convnlp("train", *args, "trainer.resume=true", cwd=killed_cwd, check=False)
    assert "no unfinished run of this config" in again.stderr
    other = convnlp("train", *args, "encoder.width=32", f"trainer.resume={killed}", cwd=killed_cwd, check=False)
    assert "was trained with another config (encoder.width: 16 there, 32 now)" in other.stderr


def test_a_finished_run_continues_with_a_longer_budget_and_the_two_ends_average(tmp_path, conll_files):
    args = [*conll_args(conll_files), *TINY, "trainer.threads=1", "trainer.patience=0"]
    convnlp("train", *args, "trainer.max_epochs=3", cwd=tmp_path)
    (first,) = run_dirs(tmp_path)
    steps = json.loads((first / "metrics.json").read_text())["steps"]
    time.sleep(1.1)  # a new run directory name (second resolution)
    result = convnlp("train", *args, "trainer.max_epochs=6", f"trainer.resume={first}", cwd=tmp_path)
    assert f"resumed from {first / 'last'} at step {steps}" in result.stdout
    (second,) = [d for d in run_dirs(tmp_path) if d != first]
    assert json.loads((second / "metrics.json").read_text())["steps"] == 2 * steps

    ends = f"checkpoints=[{first / 'last'},{second / 'last'}]"
    result = convnlp("average", ends, "output=averaged", cwd=tmp_path)
    assert json.loads(result.stdout) == {"output": "averaged", "averaged": 2}
    a, b = (load_file(d / "last" / "model.safetensors") for d in (first, second))
    mean = load_file(tmp_path / "averaged" / "model.safetensors")
    assert all(((a[k] + b[k]) / 2 - mean[k]).abs().max() < 1e-6 for k in a)
    evaluated = convnlp("eval", "checkpoint=averaged", "data.split=test", cwd=tmp_path)
    assert '"tokens": 240' in evaluated.stdout
    again = convnlp("average", ends, "output=averaged", cwd=tmp_path, check=False)
    assert (
        again.returncode == 2
        and again.stderr.strip()
        == "convnlp: error: output=averaged: exists and is not an empty directory; choose a new directory"
    )
    single = convnlp("average", f"checkpoints={first / 'last'}", "output=x", cwd=tmp_path, check=False)
    assert single.returncode == 2 and "give a list of checkpoint directories, checkpoints=[DIR1,DIR2]" in single.stderr


def test_ema_is_a_running_mean_until_its_window_is_full_then_exponential():
    from torch.optim.swa_utils import AveragedModel

    from convnlp.optimization import ema_average

    weight = torch.nn.Parameter(torch.zeros(1))
    holder = torch.nn.ParameterList([weight])
    average = AveragedModel(holder, avg_fn=ema_average(0.75), use_buffers=True)
    expected = []
    for value in range(1, 9):
        weight.data.fill_(value)
        average.update_parameters(holder)
        expected.append(average.module[0].item())
    # 1/(1 - 0.75) = 4 weights: the mean of 1..k, then 0.75 * previous + 0.25 * new
    means = [1.0, 1.5, 2.0, 2.5]
    for value in range(5, 9):
        means.append(0.75 * means[-1] + 0.25 * value)
    assert expected == pytest.approx(means)


def test_ema_weights_are_saved_and_a_resumed_ema_run_matches_an_uninterrupted_one(tmp_path, conll_files):
    """trainer.ema: checkpoints hold the moving average, last/ keeps the trained weights to resume
    from, and a run continued with the average (even from a run without it) is the same run."""
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.threads=1",
        "trainer.patience=0",
        "optim.schedule=constant",
        "optim.warmup_steps=0",
    ]  # the same learning rates whatever the budget
    full_cwd, parts_cwd = tmp_path / "full", tmp_path / "parts"
    full_cwd.mkdir()
    parts_cwd.mkdir()
    convnlp("train", *args, "trainer.ema=0.9", "trainer.max_epochs=4", cwd=full_cwd)
    (full,) = run_dirs(full_cwd)
    convnlp("train", *args, "trainer.ema=0.9", "trainer.max_epochs=2", cwd=parts_cwd)
    (first,) = run_dirs(parts_cwd)
    time.sleep(1.1)  # a new run directory name (second resolution)
    convnlp("train", *args, "trainer.ema=0.9", "trainer.max_epochs=4", f"trainer.resume={first}", cwd=parts_cwd)
    (second,) = [d for d in run_dirs(parts_cwd) if d != first]

    def last(run):
        state = torch.load(run / "last" / "training_state.pt", weights_only=True)
        return load_file(run / "last" / "model.safetensors"), state["model"]

    (average, trained), (average2, trained2) = last(full), last(second)
    assert any((average[k] - trained[k]).abs().max() > 1e-4 for k in average), "saved the trained weights"
    assert all(torch.equal(trained[k], trained2[k]) for k in trained), "resumed from the average"
    assert all((average[k] - average2[k]).abs().max() < 1e-6 for k in average)
    # the average changes nothing in training, and the run goes on without it from the trained weights
    time.sleep(1.1)
    convnlp("train", *args, "trainer.max_epochs=4", f"trainer.resume={first}", cwd=parts_cwd)
    (plain,) = [d for d in run_dirs(parts_cwd) if d not in (first, second)]
    plain_weights = load_file(plain / "last" / "model.safetensors")
    assert all(torch.equal(trained[k], plain_weights[k]) for k in trained)
    # validation scored the saved average: evaluating best/ gives the accuracy it was chosen by
    saved = json.loads((full / "best" / "metrics.json").read_text())
    convnlp("eval", f"checkpoint={full / 'best'}", cwd=tmp_path)
    evaluated = json.loads((run_dirs(tmp_path, "eval")[0] / "metrics.json").read_text())
    assert evaluated["accuracy"] == saved["accuracy"]
    # with a decay near 0 the average is the trained weights
    convnlp("train", *args, "trainer.ema=1e-9", "trainer.max_epochs=1", cwd=tmp_path)
    average, trained = last(run_dirs(tmp_path)[0])
    assert all((average[k] - trained[k]).abs().max() < 1e-5 for k in average)
    bad = convnlp("train", *args, "trainer.ema=1", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "trainer.ema" in bad.stderr and "must be in [0, 1)" in bad.stderr


def test_multirun_sweep_keeps_separate_directories(tmp_path, conll_files):
    convnlp(
        "train",
        "-m",
        "encoder=plain,dilated",
        "tokenizer=char,word",
        "trainer.max_steps=3",
        *conll_args(conll_files),
        "trainer.progress=false",
        "encoder.width=8",
        cwd=tmp_path,
    )
    runs = sorted(tmp_path.glob("outputs/train-multirun/*/*/best/config.json"))
    configs = [json.loads(p.read_text()) for p in runs]
    assert [(c["encoder"]["name"], c["tokenizer"]["name"]) for c in configs] == [
        ("plain", "char"),
        ("plain", "word"),
        ("dilated", "char"),
        ("dilated", "word"),
    ]
    assert all(json.loads((p.parent.parent / "metrics.json").read_text())["test"]["tokens"] == 240 for p in runs)
    # convnlp report: the sweep as one table, sorted, the best marked; a run without metrics listed with why
    (sweep,) = tmp_path.glob("outputs/train-multirun/*/")
    failed = sweep / "9_broken" / ".hydra"
    failed.mkdir(parents=True)
    (failed.parent / "train.log").write_text("[2026-12-01 10:00:00,000][convnlp][ERROR] - failed: disk full\n")
    result = convnlp("report", str(sweep), cwd=tmp_path)
    table = result.stdout.strip().splitlines()
    assert table[0].startswith("|  | run | overrides | validation | test | validation F1 |") and len(table) == 2 + 5 + 1
    accuracies = [float(line.split(" | ")[3].rstrip("%")) for line in table[2:6]]
    f1s = [float(line.split(" | ")[5]) for line in table[2:6]]  # BIO tags: sorted by what selected best/
    assert f1s == sorted(f1s, reverse=True) and table[2].startswith("| * |")
    assert "encoder=plain tokenizer=char" in result.stdout and table[6].endswith("| failed: disk full |")
    # the last row: mean ± sample std over the four finished runs (a cross-validation's figure)
    mean, std = table[7].split(" | ")[3].rstrip("%").split(" ± ")
    assert table[7].startswith("|  | mean ± std | 4 runs |")
    assert (
        abs(float(mean) - statistics.mean(accuracies)) < 0.01 and abs(float(std) - statistics.stdev(accuracies)) < 0.01
    )
    (report_dir,) = tmp_path.glob("outputs/report/*/")
    assert (report_dir / "report.md").read_text() == result.stdout
    rows = list(csv.DictReader(open(report_dir / "report.csv")))
    assert len(rows) == 5 and rows[0]["best"] == "True" and abs(float(rows[0]["score"]) - f1s[0]) < 1e-4
    by_test = convnlp("report", str(sweep), "sort=test.accuracy", cwd=tmp_path).stdout
    assert by_test.splitlines()[2].startswith("| * |")
    missing = convnlp("report", str(tmp_path / "nothing"), cwd=tmp_path, check=False)
    assert missing.returncode == 2 and missing.stderr == f"convnlp: error: {tmp_path / 'nothing'}: no such directory\n"


def test_every_encoder_family_trains_through_the_cli(tmp_path, conll_files):
    families = ["plain", "residual", "dense", "dilated", "wide", "lstm", "bilstm"]
    convnlp(
        "train",
        "-m",
        f"encoder={','.join(families)}",
        "trainer.max_steps=3",
        *conll_args(conll_files),
        "trainer.progress=false",
        "task.embedding_dim=8",
        cwd=tmp_path,
    )
    runs = sorted(
        tmp_path.glob("outputs/train-multirun/*/*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[0])
    )
    metrics = [json.loads(p.read_text()) for p in runs]
    assert [json.loads((p.parent / "best" / "config.json").read_text())["encoder"]["name"] for p in runs] == families
    assert [m["receptive_field"] for m in metrics][5:] == ["unbounded", "unbounded"]
    assert all(m["test"]["tokens"] == 240 for m in metrics)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["train", "encoder=dialted"],
            "unknown encoder 'dialted'; choose one of: bilstm, dense, dilated, lstm, plain, residual, separable, wide",
        ),
        (
            ["train", "encoder=wide", "encoder.kernels=[3,4]"],
            "encoder.kernels=[3, 4] must be a non-empty list of odd numbers",
        ),
        (["train", "trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'; valid keys in trainer:"),
        (["train", "trainer.max_steps=many"], "trainer.max_steps: Value 'many' of type 'str' could not"),
        (["train", "-m", "encoder=plain,nope"], "unknown encoder 'nope'"),
        (["eval", "checkpoint=missing_dir"], "missing_dir: checkpoint directory not found"),
        (["predict"], "checkpoint is required: add checkpoint=..."),
        (["train", "data=conll"], "data=conll needs a training file: data.train=PATH"),
        (["train", "data=conllu", "data.train=nope.conllu"], "nope.conllu: no such file"),
        (
            ["tran"],
            "unknown command 'tran'; choose one of: train, eval, predict, encode, interpolate, export, serve, inspect, average",
        ),
        (
            ["train", "task=classification", "data=ud_ewt"],
            "data=ud_ewt is tagging data; task=classification needs one of:",
        ),
        (
            ["train", "task=classification", "task.pooling=first"],
            "task.pooling='first' is not valid; choose one of: max, mean, attention",
        ),
        (["train", "task=classification", "data=mr", "data.fold=10"], "data.fold=10 must be in 0..9"),
        (["train", "task=classification", "data=hub"], "data.path is required: add data.path=..."),
        (["train", "task=classification", "data=jsonl", "data.train=none.jsonl"], "none.jsonl: no such file"),
    ],
)
def test_errors_are_one_line(tmp_path, args, message):
    result = convnlp(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("convnlp: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_malformed_training_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n1\tBye\tbye\n")
    result = convnlp("train", "data=conllu", f"data.train={bad}", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert f"convnlp: error: {bad}:3: expected 10 tab-separated columns, found 3" in result.stderr


def test_help_lists_commands_and_groups(tmp_path):
    assert "train" in convnlp("--help", cwd=tmp_path).stdout
    groups = convnlp("train", "--help", cwd=tmp_path).stdout
    assert "encoder: bilstm, dense, dilated, lstm, plain, residual, separable, wide" in groups
    assert (
        "data: cmudict_g2p, cmudict_stress, cmudict_syllables, cmudict_words, conll, conllu, csv, hub, jsonl, mr, "
        "parallel, probe_longrange, sst2, text, tsv, ud_ewt" in groups
    )
    assert (
        "task: autoencoder, classification, generation, tagging" in groups
        and "decoder: convs2s, deconv, lstm" in groups
    )


def test_ud_ewt_and_the_default_data_train_through_the_cli(tmp_path, shared_datasets):
    env = {"CONVNLP_DATA_DIR": str(shared_datasets)}
    convnlp("train", "data=ud_ewt", *TINY, "trainer.max_steps=3", cwd=tmp_path, env=env)
    convnlp("train", *TINY, "trainer.max_steps=3", cwd=tmp_path)
    first, second = [json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path)]
    assert first["test"]["tokens"] == 25094 and "validation" in first  # UD English-EWT test split
    assert second["test"]["tokens"] > 40000  # CMUdict stress


# ------------------------------------------------------------------------------ classification


@pytest.fixture(scope="module")
def classified(tmp_path_factory, review_files):
    cwd = tmp_path_factory.mktemp("classification")
    # a tiny model (embeddings of 8) cannot afford the defaults' dropout and word dropout
    result = convnlp(
        "train",
        *review_args(review_files),
        *TINY_CLASSIFIER,
        "tokenizer=word",
        "trainer.max_epochs=15",
        "trainer.batch_tokens=150",
        "optim.warmup_steps=10",
        "task.dropout=0.3",
        "task.embedding_dropout=0.1",
        "task.token_dropout=0",
        cwd=cwd,
    )
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, result


def test_classification_trains_and_logs_a_confusion_matrix(classified):
    _, run_dir, _ = classified
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.9 and metrics["test"]["macro_f1"] > 0.9
    assert metrics["test"]["confusion_labels"] == ["neg", "pos"]
    assert sum(map(sum, metrics["test"]["confusion"])) == metrics["test"]["examples"] == 60
    assert json.loads((run_dir / "best" / "labels.json").read_text()) == ["neg", "pos"]
    assert json.loads((run_dir / "best" / "config.json").read_text())["tokenizer"]["name"] == "word"
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"validation/accuracy", "validation/macro_f1", "train/loss"} <= set(events.Tags()["scalars"])
    assert "validation/confusion" in events.Tags()["images"]
    image = events.Images("validation/confusion")[-1]
    assert image.encoded_image_string.startswith(b"\x89PNG") and image.width > 100


def test_classification_eval_and_predict(classified, review_files, tmp_path):
    cwd, run_dir, _ = classified
    result = convnlp("eval", f"checkpoint={run_dir / 'best'}", "data.split=test", cwd=cwd)
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    final = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert printed["accuracy"] == final["accuracy"] and printed["unseen_labels"] == {}
    text = "the film was great\n\nreally dull and boring plot\n"
    rows = [
        json.loads(line)
        for line in convnlp("predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input=text).stdout.splitlines()
    ]
    assert [r["label"] for r in rows] == ["pos", None, "neg"]
    assert rows[0]["probabilities"]["pos"] > 0.5 and rows[1]["error"] == "empty text"
    # a label never seen in training: warned about, counted as an error
    other = tmp_path / "other.csv"
    other.write_text("text,label\nthe film was great,pos\nso so,mixed\n")
    result = convnlp(
        "eval",
        f"checkpoint={run_dir / 'best'}",
        "data=csv",
        f"data.train={review_files['train']}",
        f"data.test={other}",
        "data.split=test",
        cwd=cwd,
    )
    printed = json.loads(result.stdout[result.stdout.index("{\n") : result.stdout.rindex("}") + 1])
    assert printed["unseen_labels"] == {"mixed": 1} and printed["accuracy"] <= 0.5
    assert "1 text(s) carry labels never seen in training: mixed (1)" in result.stderr + result.stdout


def test_every_encoder_family_classifies_through_the_cli(tmp_path, review_files):
    families = ["plain", "residual", "dense", "dilated", "wide", "lstm", "bilstm"]
    convnlp(
        "train",
        "-m",
        f"encoder={','.join(families)}",
        "task.pooling=attention",
        "task.conv_blocks=2",
        "trainer.max_steps=3",
        *review_args(review_files),
        "trainer.progress=false",
        "task.embedding_dim=8",
        cwd=tmp_path,
    )
    runs = sorted(
        tmp_path.glob("outputs/train-multirun/*/*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[0])
    )
    assert [json.loads((p.parent / "best" / "config.json").read_text())["encoder"]["name"] for p in runs] == families
    assert all(json.loads(p.read_text())["test"]["examples"] == 60 for p in runs)


def test_classification_file_errors_name_file_and_line(tmp_path, review_files):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,pos\nbad,\n")
    result = convnlp("train", "task=classification", "data=csv", f"data.train={bad}", cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr == f"convnlp: error: {bad}:3: no label in column 'label'\n"
    result = convnlp("train", *review_args(review_files), "data.text_column=body", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "no text column 'body'; the header has: id, text, label" in result.stderr


def test_sst2_mr_and_the_default_classification_data_through_the_cli(tmp_path, shared_datasets):
    env = {"CONVNLP_DATA_DIR": str(shared_datasets)}
    convnlp(
        "train",
        "task=classification",
        "data=sst2",
        "tokenizer=bpe",
        *TINY_CLASSIFIER,
        "trainer.max_steps=3",
        cwd=tmp_path,
        env=env,
    )
    convnlp(
        "train",
        "task=classification",
        "data=mr",
        "data.fold=3",
        *TINY_CLASSIFIER,
        "trainer.max_steps=3",
        cwd=tmp_path,
        env=env,
    )
    convnlp("train", "task=classification", *TINY_CLASSIFIER, "trainer.max_steps=3", cwd=tmp_path)
    sst2, mr, default = [json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path)]
    assert sst2["test"]["examples"] == 1821 and sst2["validation"]["examples"] == 872
    assert mr["test"]["examples"] in (1066, 1067)
    assert default["test"]["examples"] > 5000 and len(default["test"]["confusion_labels"]) > 5  # syllable counts


# ---------------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def generated(tmp_path_factory, spelling_files):
    cwd = tmp_path_factory.mktemp("generation")
    result = convnlp(
        "train",
        *spelling_args(spelling_files),
        *TINY_GENERATOR,
        "task.loss=ctc",
        "trainer.max_epochs=25",
        "trainer.batch_tokens=400",
        "optim.warmup_steps=20",
        cwd=cwd,
    )
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, result


def test_generation_trains_to_low_error_rates(generated):
    _, run_dir, _ = generated
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation"]["wer"] < 0.1 and metrics["test"]["per"] < 0.05
    assert metrics["test"]["examples"] <= 60 and metrics["test"]["bleu"] > 80
    config = json.loads((run_dir / "best" / "config.json").read_text())
    assert config["decoder"]["name"] == "deconv" and config["task"]["name"] == "generation"
    assert json.loads((run_dir / "best" / "labels.json").read_text())[:3] == ["<pad>", "</s>", "<blank>"]
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"validation/wer", "validation/per", "validation/cer", "validation/bleu", "train/loss"} <= set(
        events.Tags()["scalars"]
    )


def test_generation_eval_and_predict(generated, spelling_files):
    cwd, run_dir, _ = generated
    result = convnlp("eval", f"checkpoint={run_dir / 'best'}", "data.split=test", cwd=cwd)
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    final = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert printed["wer"] == final["wer"] and printed["per"] == final["per"]
    rows = [
        json.loads(line)
        for line in convnlp(
            "predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input="abba\n\nabcdefgabc\ncafe\n"
        ).stdout.splitlines()
    ]
    assert rows[0] == {"source": "abba", "output": "A B A", "tokens": ["A", "B", "A"]}
    assert rows[1]["output"] is None and rows[1]["error"] == "empty text"
    assert rows[2]["output"] is None and "longer than decoder.source_length=8" in rows[2]["error"]
    assert rows[3]["output"] == "C A F E"


def test_an_ensemble_evaluates_and_predicts_and_needs_one_task(generated, trained):
    cwd, run_dir, _ = generated
    members = f"checkpoint=[{run_dir / 'best'},{run_dir / 'last'}]"
    result = convnlp("eval", members, "data.split=test", cwd=cwd)
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert printed["checkpoint"] == [str(run_dir / "best"), str(run_dir / "last")]
    assert printed["examples"] > 0 and printed["wer"] < 0.2
    rows = [json.loads(line) for line in convnlp("predict", members, cwd=cwd, input="abba\ncafe\n").stdout.splitlines()]
    assert [r["output"] for r in rows] == ["A B A", "C A F E"]
    _, tagger, _ = trained
    mixed = convnlp("eval", f"checkpoint=[{run_dir / 'best'},{tagger / 'best'}]", cwd=cwd, check=False)
    assert mixed.returncode == 2 and mixed.stderr.strip() == (
        f"convnlp: error: {tagger / 'best'}: task=tagging where {run_dir / 'best'} has task=generation; "
        "an ensemble's checkpoints must share the task, the tokenizer, the labels and the word features"
    )


def test_init_starts_from_a_checkpoints_weights_and_a_teacher_relabels_the_training_sources(
    tmp_path, generated, spelling_files, trained, conll_files
):
    _, run_dir, _ = generated
    # a run directory stands for its best/; a learning rate of 1e-9 leaves the weights as they were
    result = convnlp(
        "train",
        *spelling_args(spelling_files),
        *TINY_GENERATOR,
        "task.loss=ctc",
        f"trainer.init={run_dir}",
        f"trainer.teacher=[{run_dir / 'best'},{run_dir / 'last'}]",
        "trainer.max_steps=1",
        "optim.lr=1e-9",
        "optim.warmup_steps=0",
        "trainer.ema=0.9",
        cwd=tmp_path,
    )
    (student,) = run_dirs(tmp_path)
    metrics = json.loads((student / "metrics.json").read_text())
    teacher_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["init"] == str((run_dir / "best").resolve())
    distinct = {line.split("\t")[0] for line in spelling_files["train"].read_text().splitlines()}
    teacher = metrics["teacher"]
    assert teacher["checkpoints"] == [str(run_dir / "best"), str(run_dir / "last")]
    assert teacher["sources"] == teacher["relabeled"] == len(distinct) < 600  # repeated sources relabeled once
    assert teacher["kept"] == 0 and 0 < teacher["seconds"]
    assert teacher["changed"] < 0.2 * len(distinct)  # the teacher knows most of them
    assert f"train: {len(distinct)} pairs" in result.stderr + result.stdout  # the student learns from those
    before = load_file(run_dir / "best" / "model.safetensors")
    after = load_file(student / "best" / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.allclose(after[k], v, atol=1e-5) for k, v in before.items())
    assert metrics["test"]["wer"] == teacher_metrics["test"]["wer"]
    assert json.loads((student / "best" / "labels.json").read_text()) == json.loads(
        (run_dir / "best" / "labels.json").read_text()
    )
    for args, message in (
        (
            ["encoder.width=48", f"trainer.init={run_dir}"],
            (
                f"trainer.init: {run_dir / 'best'} is another model (encoder.width: 32 there, 48 now); set the model "
                "groups as it has them"
            ),
        ),
        (["trainer.init=nowhere"], "trainer.init: nowhere: checkpoint directory not found"),
        (["trainer.teacher=[]"], "trainer.teacher=[]: give a checkpoint directory, or a list of them (an ensemble)"),
        (
            [f"trainer.teacher={trained[1]}"],
            f"trainer.teacher: {trained[1] / 'best'} is a task=tagging model; it cannot teach task=generation",
        ),
        (
            [f"trainer.teacher={run_dir}", "task.target_tokens=char"],
            f"trainer.teacher: {run_dir / 'best'} has task.target_tokens=word, this run char; they must be the same",
        ),
    ):
        result = convnlp("train", *spelling_args(spelling_files), *TINY_GENERATOR, *args, cwd=tmp_path, check=False)
        assert result.returncode == 2 and result.stderr == f"convnlp: error: {message}\n"
    result = convnlp("train", *conll_args(conll_files), *TINY, f"trainer.teacher={run_dir}", cwd=tmp_path, check=False)
    assert result.stderr == "convnlp: error: trainer.teacher: distillation is for task=generation, not task=tagging\n"


def test_inspect_shows_the_decoders_length_arithmetic(tmp_path, generated):
    _, run_dir, _ = generated
    result = convnlp("inspect", "task=generation", "decoder.bottleneck=vector", "decoder.max_length=20", cwd=tmp_path)
    for stage in ("code: pooled vector", "up[0] deconv k=4 s=2 p=1", "up[4] deconv k=4 s=2 p=1", "crop to max_length"):
        assert stage in result.stdout
    (out,) = (tmp_path / "outputs" / "inspect").glob("*/")
    lengths = json.loads((out / "inspect.json").read_text())["decoder"]["lengths"]
    # cmudict_g2p gives each source its own length, at most max_length
    assert [row["length"] for row in lengths] == [1, 2, 4, 8, 16, 32, 20, 20]
    assert "a source of n symbols: min(2n + 6, max_length)" in result.stdout
    result = convnlp("inspect", f"checkpoint={run_dir / 'best'}", cwd=tmp_path)  # a trained decoder
    assert "window of 8" in result.stdout and "down[0] conv k=3 s=2" in result.stdout


def test_both_losses_and_bottlenecks_train_through_the_cli(tmp_path, spelling_files):
    convnlp(
        "train",
        "-m",
        "task.loss=ce,ctc",
        "decoder.bottleneck=vector,sequence",
        "trainer.max_steps=3",
        *spelling_args(spelling_files),
        *TINY_GENERATOR,
        "decoder.max_length=16",
        cwd=tmp_path,
    )
    runs = sorted(
        tmp_path.glob("outputs/train-multirun/*/*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[0])
    )
    configs = [json.loads((p.parent / "best" / "config.json").read_text()) for p in runs]
    assert [(c["task"]["loss"], c["decoder"]["bottleneck"]) for c in configs] == [
        ("ce", "vector"),
        ("ce", "sequence"),
        ("ctc", "vector"),
        ("ctc", "sequence"),
    ]
    assert all(json.loads(p.read_text())["test"]["examples"] > 40 for p in runs)
    # the loss x bottleneck table (docs/experiments/g2p.md): convnlp report sorted by validation WER, lowest first
    (sweep,) = tmp_path.glob("outputs/train-multirun/*/")
    table = convnlp("report", str(sweep), "sort=validation.wer", cwd=tmp_path).stdout.splitlines()
    header = [cell.strip() for cell in table[0].split("|")]
    for column in ("validation WER", "test WER", "test PER", "test CER", "test sources/s"):
        assert column in header
    wers = [float(line.split("|")[header.index("validation WER")].strip().rstrip("%")) for line in table[2:6]]
    assert wers == sorted(wers) and table[2].startswith("| * |") and "mean ± std | 4 runs" in table[6]


def test_generation_errors_are_one_line(tmp_path, spelling_files):
    long = tmp_path / "long.tsv"
    long.write_text("ab\tA B\nabcdefgabcdefg\tA\nabc\tA B C D E F G H I J\n")
    result = convnlp("train", *TINY_GENERATOR, "data=parallel", f"data.train={long}", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "convnlp: error: train: 1 target(s) need more than min(2 x source symbols + 6, "
        "decoder.max_length=8) positions (decoder.output_length=source) (up to 11; "
        "first: 'abc' -> 'A B C D E F G H I J'); 1 source(s) are longer than "
        "decoder.source_length=8 symbols"
    )
    assert result.stderr.count("\n") == 1
    result = convnlp(
        "train",
        *TINY_GENERATOR,
        "data=parallel",
        f"data.train={long}",
        "decoder.too_long=filter",
        "trainer.max_steps=2",
        cwd=tmp_path,
    )
    assert "left out 2 pair(s) (decoder.too_long=filter)" in result.stderr + result.stdout
    result = convnlp("train", *TINY_GENERATOR, "data=parallel", cwd=tmp_path, check=False)
    assert result.stderr == "convnlp: error: data=parallel needs a training file: data.train=PATH\n"
    result = convnlp(
        "train", "task=generation", "decoder.strides=[2]", "decoder.max_length=80", cwd=tmp_path, check=False
    )
    assert (
        result.stderr == "convnlp: error: decoder.strides=[2] reach 64 positions (32 -> 64), fewer than "
        "decoder.max_length=80; add layers or leave decoder.strides empty\n"
    )
    result = convnlp("train", "task=generation", "data=sst2", cwd=tmp_path, check=False)
    assert result.stderr.startswith("convnlp: error: data=sst2 is classification data; task=generation needs one of: ")


def test_the_default_generation_data_through_the_cli(tmp_path):
    convnlp(
        "train",
        "task=generation",
        "decoder=deconv",
        "trainer.max_steps=2",
        "encoder.width=16",
        "decoder.width=16",
        "trainer.progress=false",
        cwd=tmp_path,
    )
    (run_dir,) = run_dirs(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["examples"] > 5000 and metrics["validation"]["examples"] > 5000


def test_random_kills_resume_to_identical_weights_and_failed_writes_stop_in_one_line(tmp_path):
    """Issue 16: scripts/reliability.py SIGKILLs a run at random moments (many during a
    checkpoint write), checks that every checkpoint on disk loads, resumes, and compares the final
    weights with an uninterrupted run's; then makes checkpoint writes fail (file size limit,
    read-only directory, full disk where a tmpfs can be mounted). A small budget here; docs/checkpoints.md
    gives the command for the large one."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "reliability.py"
    result = subprocess.run(
        [sys.executable, str(script), "kill", "write-fails", "--kills", "2", "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    kill = report["kill"]
    assert kill["kills"] == 2 and kill["problems"] == [] and kill["checkpoints_loaded"] >= 1
    assert kill["same_last_weights"] and kill["same_best_weights"] and kill["same_test_metrics"]
    fsize = report["write_fails"]["file_size_limit"]
    assert fsize["passed"] and fsize["stderr"][0].startswith("convnlp: error: cannot write the checkpoint ")
    assert "File too large" in fsize["stderr"][0]
    for case in ("read_only_directory", "disk_full"):  # where this machine allows them
        assert report["write_fails"][case]["passed"] in (True, None), report["write_fails"][case]


def test_run_directories_of_the_same_second_are_claimed_exclusively(tmp_path, monkeypatch):
    from convnlp import cli

    monkeypatch.setattr(cli.time, "strftime", lambda fmt: "2026-12-01_10-00-00")
    claimed = [cli.claim_run_dir("train", False, tmp_path / "outputs") for _ in range(3)]
    assert [p.name for p in claimed] == ["2026-12-01_10-00-00", "2026-12-01_10-00-00_2", "2026-12-01_10-00-00_3"]
    assert cli.claim_run_dir("train", True, tmp_path / "outputs").parent.name == "train-multirun"


def test_a_run_killed_during_its_final_evaluation_finishes_without_training_more(tmp_path, conll_files):
    """A run that stopped early (patience) and was killed before it marked itself finished: the
    resume goes straight to the final evaluation, so its weights stay those of the stopped run."""
    args = [
        *conll_args(conll_files),
        *TINY,
        "trainer.threads=1",
        "trainer.eval_every=5",
        "trainer.patience=1",
        "optim.lr=1e-9",
        "optim.warmup_steps=0",
        "trainer.max_epochs=50",
    ]
    convnlp("train", *args, cwd=tmp_path)
    (stopped,) = run_dirs(tmp_path)
    metrics = json.loads((stopped / "metrics.json").read_text())
    assert (
        metrics["stop_reason"] == "trainer.patience=1: no better validation f1 in 1 evaluations"
        and metrics["steps"] == 10
    )
    last = json.loads((stopped / "last" / "metrics.json").read_text())
    assert last["finished"] is True
    (stopped / "last" / "metrics.json").write_text(json.dumps({**last, "finished": False}))  # killed before this
    (stopped / "metrics.json").unlink()
    result = convnlp("train", *args, "trainer.resume=true", cwd=tmp_path)
    assert f"resumed from {stopped / 'last'} at step 10" in result.stdout
    (resumed,) = [d for d in run_dirs(tmp_path) if d != stopped]
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 10
    a, b = load_file(stopped / "last" / "model.safetensors"), load_file(resumed / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
