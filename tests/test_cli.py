"""End-to-end runs of the real CLI in subprocesses, on tiny data and tiny models."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import TINY, conll_args, convnlp, run_dirs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, conll_files):
    """One real training run on the tiny BIO data; several tests read its outputs."""
    cwd = tmp_path_factory.mktemp("run")
    result = convnlp("train", *conll_args(conll_files), *TINY, "trainer.max_epochs=30",
                     "optim.warmup_steps=20", cwd=cwd)
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, result


def test_train_writes_a_complete_run_directory(trained):
    _, run_dir, result = trained
    for name in ("best/model.safetensors", "best/config.json", "best/tokenizer.json", "best/labels.json",
                 "best/metrics.json", "last/training_state.pt", "metrics.json", "train.log",
                 ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.9  # the tiny data is learnable
    assert metrics["test"]["f1"] > 0.8               # BIO tags: seqeval entity F1 is reported
    assert json.loads((run_dir / "best" / "labels.json").read_text()) == ["B-LOC", "B-PER", "I-LOC", "O"]
    assert "data: whitespace-column files (data=conll)" in (run_dir / "train.log").read_text()


def test_tensorboard_events_hold_the_scalars(trained):
    _, run_dir, _ = trained
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s",
            "validation/accuracy", "validation/f1"} <= scalars
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
    convnlp("predict", f"checkpoint={run_dir / 'best'}", f"input={tmp_path / 'in.txt'}",
            f"output={tmp_path / 'out.jsonl'}", cwd=cwd)
    assert (tmp_path / "out.jsonl").read_text() == result.stdout
    bad = convnlp("predict", f"checkpoint={run_dir / 'best'}", "output=/nonexistent/out.jsonl", cwd=cwd,
                  input=text, check=False)
    assert bad.returncode == 2 and bad.stderr == "convnlp: error: /nonexistent/out.jsonl: cannot open (No such file or directory)\n"
    latin = convnlp("predict", f"checkpoint={run_dir / 'best'}", cwd=cwd, input="ok\ncaf\xe9 x\n".encode("latin-1"),
                    check=False)
    assert latin.returncode == 2 and "<stdin>:2: cannot decode byte b'\\xe9' at column 4 as utf-8" in latin.stderr


def test_resume_after_a_killed_run_gives_the_same_model(tmp_path, conll_files):
    args = [*conll_args(conll_files), *TINY, "trainer.max_steps=300", "trainer.max_epochs=100",
            "trainer.eval_every=10",
            "trainer.threads=1", "trainer.patience=0"]
    full_cwd, killed_cwd = tmp_path / "full", tmp_path / "killed"
    full_cwd.mkdir()
    killed_cwd.mkdir()
    convnlp("train", *args, cwd=full_cwd)
    (full,) = run_dirs(full_cwd)

    process = subprocess.Popen([sys.executable, "-m", "convnlp", "train", *args], cwd=killed_cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = list(killed_cwd.glob("outputs/train/*/last/metrics.json"))
        if metrics and json.loads(metrics[0].read_text())["step"] >= 50:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (killed,) = run_dirs(killed_cwd)
    state = json.loads((killed / "last" / "metrics.json").read_text())
    assert not state["finished"] and 50 <= state["step"] < 300, state

    time.sleep(1.1)  # a new run directory name (second resolution)
    result = convnlp("train", *args, "trainer.resume=true", cwd=killed_cwd)
    assert f"resumed from {killed / 'last'} at step {state['step']}" in result.stdout
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


def test_multirun_sweep_keeps_separate_directories(tmp_path, conll_files):
    convnlp("train", "-m", "encoder=plain,dilated", "tokenizer=char,word", "trainer.max_steps=3",
            *conll_args(conll_files), "trainer.progress=false", "encoder.width=8", cwd=tmp_path)
    runs = sorted(tmp_path.glob("outputs/train-multirun/*/*/best/config.json"))
    configs = [json.loads(p.read_text()) for p in runs]
    assert [(c["encoder"]["name"], c["tokenizer"]["name"]) for c in configs] == [
        ("plain", "char"), ("plain", "word"), ("dilated", "char"), ("dilated", "word")]
    assert all(json.loads((p.parent.parent / "metrics.json").read_text())["test"]["tokens"] == 240
               for p in runs)


def test_every_encoder_family_trains_through_the_cli(tmp_path, conll_files):
    families = ["plain", "residual", "dense", "dilated", "lstm", "bilstm"]
    convnlp("train", "-m", f"encoder={','.join(families)}", "trainer.max_steps=3", *conll_args(conll_files),
            "trainer.progress=false", "task.embedding_dim=8", cwd=tmp_path)
    runs = sorted(tmp_path.glob("outputs/train-multirun/*/*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[0]))
    metrics = [json.loads(p.read_text()) for p in runs]
    assert [json.loads((p.parent / "best" / "config.json").read_text())["encoder"]["name"] for p in runs] == families
    assert [m["receptive_field"] for m in metrics][4:] == ["unbounded", "unbounded"]
    assert all(m["test"]["tokens"] == 240 for m in metrics)


@pytest.mark.parametrize("args,message", [
    (["train", "encoder=dialted"], "unknown encoder 'dialted'; choose one of: bilstm, dense, dilated, lstm, plain, residual"),
    (["train", "trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'; valid keys in trainer:"),
    (["train", "trainer.max_steps=many"], "trainer.max_steps: Value 'many' of type 'str' could not"),
    (["train", "-m", "encoder=plain,nope"], "unknown encoder 'nope'"),
    (["eval", "checkpoint=missing_dir"], "missing_dir: checkpoint directory not found"),
    (["predict"], "checkpoint is required: add checkpoint=..."),
    (["train", "data=conll"], "data=conll needs a training file: data.train=PATH"),
    (["train", "data=conllu", "data.train=nope.conllu"], "nope.conllu: no such file"),
    (["tran"], "unknown command 'tran'; choose one of: train, eval, predict, inspect"),
])
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
    assert "encoder: bilstm, dense, dilated, lstm, plain, residual" in groups
    assert "data: cmudict_stress, conll, conllu, probe_longrange, ud_ewt" in groups


def test_ud_ewt_and_the_default_data_train_through_the_cli(tmp_path, shared_datasets):
    env = {"CONVNLP_DATA_DIR": str(shared_datasets)}
    convnlp("train", "data=ud_ewt", *TINY, "trainer.max_steps=3", cwd=tmp_path, env=env)
    convnlp("train", *TINY, "trainer.max_steps=3", cwd=tmp_path)
    first, second = [json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path)]
    assert first["test"]["tokens"] == 25094 and "validation" in first   # UD English-EWT test split
    assert second["test"]["tokens"] > 40000                               # CMUdict stress
