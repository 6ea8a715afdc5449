"""task=autoencoder: codes, the KL term, noise, data, interpolate/encode, trainer.init into a classifier."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import convnlp
from convnlp import codes
from convnlp.data import load_splits
from convnlp.data import noise as noise_
from convnlp.data.labeled import CsvConfig
from convnlp.data.text import TextConfig
from convnlp.decoders.deconv import DeconvConfig
from convnlp.errors import UserError
from tests.conftest import convnlp as cli
from tests.conftest import run_dirs, write_csv_splits

WORDS = (
    "cat dog bird fish horse mouse lion tiger bear wolf fox deer frog duck goat sheep cow pig hen owl "
    "ant bee crab seal whale shark eel swan crow dove hawk lark mole rat bat yak emu gnu elk ape"
).split()
SMALL = [
    "encoder.width=64",
    "encoder.blocks=1",
    "task.embedding_dim=32",
    "task.code_dim=64",
    "decoder.width=64",
    "decoder.max_length=16",
    "trainer.batch_tokens=400",
    "trainer.threads=1",
    "trainer.progress=false",
]


def word_lengths(n: int, seed: int) -> list[tuple[str, str]]:
    """Labelled rows: a few of the words, labelled by their length."""
    rng = random.Random(seed)
    return [(w, "long" if len(w) > 3 else "short") for w in (rng.choice(WORDS) for _ in range(n))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("words")
    (root / "train.txt").write_text("\n".join(WORDS) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(corpus):
    """An autoencoder that has learnt the tiny corpus (validated on its training words)."""
    train = str(corpus / "train.txt")
    args = ["task=autoencoder", "data=text", f"data.train={train}", f"data.validation={train}", *SMALL]
    cli("train", *args, "trainer.max_steps=250", "trainer.eval_every=250", cwd=corpus)
    (run,) = run_dirs(corpus)
    return run


def test_an_autoencoder_learns_to_reconstruct_a_tiny_corpus(trained):
    metrics = json.loads((trained / "best" / "metrics.json").read_text())
    assert metrics["validation"]["token_accuracy"] > 0.9, metrics["validation"]
    records = convnlp.load(trained).predict(WORDS[:10])
    assert sum(r["output"] == w for r, w in zip(records, WORDS)) >= 8


def test_interpolation_ends_decode_to_the_inputs(trained, corpus):
    model = convnlp.load(trained)
    path = model.interpolate("horse", "whale", steps=4)
    assert [r["t"] for r in path] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert (path[0]["output"], path[-1]["output"]) == ("horse", "whale")
    out = cli("interpolate", f"checkpoint={trained}", "a=horse", "b=whale", "steps=3", "path=slerp", cwd=corpus)
    lines = out.stdout.strip().split("\n")
    assert len(lines) == 4 and lines[0] == "0.000\thorse" and lines[-1] == "1.000\twhale"


def test_encode_gives_one_code_per_text(trained, corpus):
    model = convnlp.load(trained)
    assert model.encode(["cat", "dog"]).shape == (2, 64) and model.encode("cat").shape == (64,)
    out = cli("encode", f"checkpoint={trained}", input="cat\ndog\n", cwd=corpus)
    records = [json.loads(line) for line in out.stdout.strip().split("\n")]
    assert [r["text"] for r in records] == ["cat", "dog"] and len(records[0]["code"]) == 64
    cli("encode", f"checkpoint={trained}", "output=codes.npy", input="cat\ndog\nfox\n", cwd=corpus)
    assert np.load(corpus / "codes.npy").shape == (3, 64)


def test_bad_input_gets_one_line(trained, corpus, tmp_path):
    def error(*args, input=None):
        result = cli(*args, cwd=tmp_path, input=input, check=False)
        assert result.returncode != 0
        line = result.stderr.strip().split("\n")[-1]
        assert line.startswith("convnlp: error:") and "Traceback" not in result.stderr, result.stderr
        return line

    (tmp_path / "gap.txt").write_text("cat\n\ndog\n")
    assert "gap.txt:2: empty line" in error(
        "train", "task=autoencoder", "data=text", f"data.train={tmp_path / 'gap.txt'}"
    )
    (tmp_path / "long.txt").write_text("cat\nhippopotamus and friends\n")
    line = error(
        "train", "task=autoencoder", "data=text", f"data.train={tmp_path / 'long.txt'}", "decoder.max_length=8"
    )
    assert "1 text(s) have more than 7 symbols" in line and "decoder.too_long=filter" in line
    assert "give two texts" in error("interpolate", f"checkpoint={trained}", "a=cat")
    assert "empty line" in error("encode", f"checkpoint={trained}", input="cat\n\n")


def test_a_classifier_checkpoint_has_no_codes(tmp_path):
    files = write_csv_splits(tmp_path, word_lengths, (80, 20, 20))
    args = ["task=classification", "data=csv", f"data.train={files['train']}", f"data.validation={files['validation']}"]
    cli("train", *args, "trainer.max_steps=2", "trainer.threads=1", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    result = cli("interpolate", f"checkpoint={run}", "a=cat", "b=dog", cwd=tmp_path, check=False)
    assert result.returncode != 0 and "codes come from a task=autoencoder checkpoint" in result.stderr
    with pytest.raises(UserError, match="task=classification"):
        convnlp.load(run).encode(["cat"])


def test_trainer_init_starts_a_classifier_from_the_autoencoder(trained, tmp_path):
    files = write_csv_splits(tmp_path, word_lengths, (80, 20, 20))
    args = ["task=classification", "data=csv", f"data.train={files['train']}", f"data.validation={files['validation']}"]
    same = ["encoder.width=64", "encoder.blocks=1", "task.embedding_dim=32", "trainer.threads=1"]
    out = cli("train", *args, *same, f"trainer.init={trained}", "trainer.max_steps=1", "optim.lr=1e-12", cwd=tmp_path)
    assert "the embedding and encoder of the autoencoder" in out.stderr + out.stdout
    (run,) = run_dirs(tmp_path)
    ours, theirs = convnlp.load(run).model.state_dict(), convnlp.load(trained).model.state_dict()
    assert "embedding.weight" in ours
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in ours if k.startswith(("embedding.", "encoder.")))
    result = cli(
        "train", *args, "encoder.width=32", f"trainer.init={trained}", "trainer.max_steps=1", cwd=tmp_path, check=False
    )
    assert (
        result.returncode != 0
        and "has another encoder than this model (encoder.blocks: 1 there, 2 now)" in result.stderr
    )


def test_kl_term_warm_up_and_free_bits():
    head = codes.CodeAutoencoder(
        8, 10, {**_deconv(), "max_length": 8}, code_dim=4, variational=True, kl_anneal_steps=10, free_bits=0.5
    )
    assert head.kl_weight_now() == 0.0
    head.batches.fill_(5)
    assert head.kl_weight_now() == pytest.approx(0.5)
    head.batches.fill_(50)
    assert head.kl_weight_now() == 1.0
    zero = torch.zeros(3, 4)
    assert torch.allclose(codes.kl_divergence(zero, zero), zero)  # the prior itself: no KL
    assert head.penalty(zero, zero).item() == pytest.approx(4 * 0.5)  # each dimension held at free_bits
    far = torch.full((3, 4), 2.0)
    assert head.penalty(far, zero).item() == pytest.approx(4 * 2.0)  # 0.5 * mean^2 per dimension
    head.train()
    h, mask = torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    logits, penalty = head(h, mask, {})
    assert logits.shape == (3, 8, 10) and int(head.batches) == 51 and penalty.item() > 0


def test_interpolation_paths_start_and_end_at_the_codes():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    for kind in codes.PATHS:
        path = codes.path(a, b, 4, kind)
        assert path.shape == (5, 2) and torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    arc = codes.path(a, b, 2, "slerp")
    assert arc[1].norm().item() == pytest.approx(1.5)  # norms interpolated, on the arc


def test_noise_corrupts_and_never_empties():
    rng = random.Random(0)
    ids = list(range(10, 30))
    assert noise_.corrupt(ids, {}, [5], rng) == ids
    assert noise_.corrupt(ids, {"drop": 0.99}, [5], rng) != []
    swapped = noise_.corrupt(ids, {"swap": 0.5}, [5], rng)
    assert sorted(swapped) == ids and swapped != ids
    substituted = noise_.corrupt(ids, {"substitute": 0.5}, [5], rng)
    assert len(substituted) == len(ids) and 5 in substituted
    assert len(noise_.corrupt(ids, {"insert": 0.5}, [5], rng)) > len(ids)
    assert not noise_.check({"typo": 0.1}) and not noise_.check({"drop": 1.0}) and noise_.check({"drop": 0.2})


def test_any_data_set_with_text_feeds_an_autoencoder(tmp_path):
    files = write_csv_splits(tmp_path, word_lengths, (6, 2, 2))
    splits = load_splits(CsvConfig(train=str(files["train"])), ("train",), "autoencoder")
    assert splits["train"].column_names == ["text"] and splits["train"]["text"] == [t for t, _ in word_lengths(6, 1)]
    (tmp_path / "t.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    splits = load_splits(TextConfig(train=str(tmp_path / "t.jsonl")), ("train",), "autoencoder")
    assert splits["train"]["text"] == ["one", "two"]


def _deconv() -> dict:
    import dataclasses

    return dataclasses.asdict(DeconvConfig(width=16, rest_dilations=[1]))


def test_eval_scores_an_autoencoder(trained, corpus):
    cli("eval", f"checkpoint={trained}", cwd=corpus)  # its data's validation file: the training words
    (run,) = run_dirs(corpus, "eval")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["token_accuracy"] > 0.9 and {"accuracy", "per", "bleu", "unknown"} <= set(metrics)


def test_a_variational_lstm_autoencoder_reports_kl_and_active_units(corpus, tmp_path):
    train = str(corpus / "train.txt")
    args = ["task=autoencoder", "data=text", f"data.train={train}", f"data.validation={train}", *SMALL]
    variational = ["decoder=lstm", "decoder.width=32", "task.variational=true", "task.word_dropout=0.3"]
    noisy = ["task.noise.drop=0.1", "task.noise.substitute=0.1", "task.kl_anneal_steps=10", "task.free_bits=0.1"]
    cli("train", *args, *variational, *noisy, "trainer.max_steps=20", "trainer.eval_every=20", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    validation = json.loads((run / "best" / "metrics.json").read_text())["validation"]
    assert validation["kl"] > 0 and 0 <= validation["active_units"] <= 64
    assert "denoising: the training input is corrupted every batch" in (run / "train.log").read_text()
    assert len(convnlp.load(run).interpolate("cat", "dog", steps=2)) == 3


def test_inserted_noise_never_takes_an_input_past_what_the_decoder_holds():
    from convnlp.data import tokenizer as tok
    from convnlp.tasks import autoencoder as ae

    tokenizer = tok.build("char", WORDS)
    task = {"decoder": {**_deconv(), "max_length": 8}, "noise": {"insert": 0.9}}
    labels = ae.label_vocabulary(None, task, tokenizer)
    encoded = ae.encode({"text": ["horse", "whale", "cat"]}, tokenizer, labels, "train", task)
    batch = ae.make_batch(encoded, [0, 1, 2])
    assert batch["ids"].shape[1] <= 7 and batch["target"].shape == (3, 6)  # the targets stay clean
