"""Hashed word features (``task.features``): their values, stable ids, how symbols carry them,
the model's use of them (padding-safe), and a real training / predict / bench round trip."""

import json
import subprocess
import sys

import pytest
import torch

from convnlp.data import features as feats
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.tasks import classification, tagging
from tests.conftest import TINY, TINY_CLASSIFIER, conll_args, convnlp, review_args, run_dirs

NAMES = ["lower", "prefix1", "suffix3", "shape"]


@pytest.mark.parametrize(
    "word,name,expected",
    [
        ("McDonald's", "shape", "XxXxxxx'x"),
        ("1990s", "shape", "ddddx"),
        ("Straße", "lower", "straße"),
        ("walking", "suffix3", "ing"),
        ("walking", "prefix2", "wa"),
        ("a", "suffix3", "a"),
        ("ÉCOLE", "shape", "XXXX"),
    ],
)
def test_feature_values(word, name, expected):
    assert feats.value(name, word) == expected


def test_ids_are_stable_across_processes_and_stay_in_their_blocks():
    features = feats.WordFeatures(NAMES, rows=50)
    ids = features.word("Walking")
    assert len(ids) == 4 and all(k * 50 + 1 <= i < (k + 1) * 50 for k, i in enumerate(ids))
    assert features.word("walking")[0] == ids[0]  # lower: case does not matter
    assert features.word("walking")[3] != ids[3]  # shape: it does
    code = f"from convnlp.data.features import WordFeatures; print(list(WordFeatures({NAMES!r}, 50).word('Walking')))"
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout
    assert json.loads(other) == list(ids)  # not Python's salted hash()


def test_every_symbol_of_a_word_carries_its_features_and_spaces_none():
    features = feats.WordFeatures(NAMES, rows=50)
    words = ["The", "cat"]
    chars = tok.build("char", [words])
    ids, firsts, lasts = tok.encode(chars, [words])
    per_symbol = features.symbols(words, firsts[0], lasts[0], len(ids[0]))
    assert per_symbol == [*features.word("The") * 3, *features.none, *features.word("cat") * 3]  # 4 per symbol
    wordlevel = tok.build("word", [words])
    ids, firsts, lasts = tok.encode(wordlevel, [words])
    assert features.symbols(words, firsts[0], lasts[0], len(ids[0])) == [*features.word("The"), *features.word("cat")]


def test_a_word_without_symbols_of_its_own_takes_none_from_the_next_word():
    features = feats.WordFeatures(NAMES, rows=50)
    # as tok.encode gives it for a word the tokenizer drops (e.g. a no-break space under bpe):
    # it points at the next word's first symbol
    per_symbol = features.symbols(["the", "\u00a0", "cat"], [0, 1, 1], [0, 1, 1], 2)
    assert per_symbol == [*features.word("the"), *features.word("cat")]


def test_a_batch_of_empty_texts_is_scored_with_features():
    task = {
        "name": "classification",
        "embedding_dim": 8,
        "embedding_dropout": 0.0,
        "features": NAMES,
        "feature_rows": 16,
        "pooling": "max",
        "conv_blocks": 0,
        "conv_kernel": 3,
        "hidden": 0,
        "dropout": 0.0,
    }
    encoder = {
        "name": "plain",
        "width": 8,
        "layers": 1,
        "kernel": 3,
        "activation": "relu",
        "norm": "layer",
        "dropout": 0.0,
    }
    tokenizer = tok.build("word", ["a good film"])
    model = build_model(task, encoder, tokenizer.get_vocab_size(), 2).eval()
    encoded = classification.encode_texts(tokenizer, ["", ""], feats.from_task(task))
    assert model(classification.make_batch(encoded, [0, 1])).shape == (2, 2)


def test_a_texts_symbols_carry_the_features_of_the_word_they_start_in():
    features = feats.WordFeatures(NAMES, rows=50)
    texts = ["Good film, really."]
    bpe = tok.build("bpe", texts * 5, max_vocab=40)
    encoded = classification.encode_texts(bpe, texts, features)
    ids, starts = tok.encode_texts_with_offsets(bpe, texts)
    words = {start: word for word, (start, end) in tok.words(texts[0]) for start in range(start, end)}
    assert encoded["ids"] == ids
    assert encoded["features"][0] == [i for s in starts[0] for i in features.word(words[s])]
    comma = starts[0].index(texts[0].index(","))  # punctuation is a word of its own
    assert encoded["features"][0][4 * comma : 4 * comma + 4] == list(features.word(","))


@pytest.mark.parametrize(
    "names,message",
    [
        (["lower", "sufix3"], "'sufix3' is not a word feature"),
        (["suffix0"], "'suffix0' is not a word feature"),
        (["shape", "shape"], "shape given more than once"),
    ],
)
def test_bad_feature_names_are_one_line(names, message):
    with pytest.raises(UserError, match=message):
        feats.WordFeatures(names, rows=10)


def test_features_never_leak_from_padding():
    task = {
        "name": "tagging",
        "embedding_dim": 8,
        "embedding_dropout": 0.0,
        "features": NAMES,
        "feature_rows": 64,
        "pooling": "first",
        "word_layers": 1,
        "word_kernel": 3,
        "word_dropout": 0.0,
    }
    encoder = {
        "name": "plain",
        "width": 8,
        "layers": 2,
        "kernel": 3,
        "activation": "relu",
        "norm": "layer",
        "dropout": 0.0,
    }
    sentences = [["A", "short", "one"], ["a", "much", "longer", "sentence", "than", "that"]]
    tokenizer = tok.build("word", sentences)
    model = build_model(task, encoder, tokenizer.get_vocab_size(), 5).eval()
    features = feats.from_task(task)
    encoded = tagging.encode_words(tokenizer, sentences, features)
    alone = model(tagging.make_batch(encoded, [0]))
    padded = model(tagging.make_batch(encoded, [0, 1]))
    assert torch.allclose(alone[0], padded[0, :3], atol=1e-5)
    assert model.features.weight.shape == (4 * 64, 8)
    assert model.features.weight[0].abs().sum() == 0  # the padding row


def test_tagging_with_word_features_trains_predicts_and_benches(tmp_path, conll_files):
    args = [
        *conll_args(conll_files),
        *TINY,
        "tokenizer=word",
        "task.features=[lower,suffix2,shape]",
        "task.pooling=first",
        "task.word_layers=0",
        "trainer.max_epochs=2",
        "trainer.batch_tokens=100",
    ]
    convnlp("train", *args, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["task"]["features"] == ["lower", "suffix2", "shape"]
    sentence = "EU rejects German call to boycott British lamb ."
    predicted = convnlp("predict", f"checkpoint={run / 'best'}", cwd=tmp_path, input=sentence + "\n")
    record = json.loads(predicted.stdout)
    assert record["tokens"] == sentence.split() and len(record["tags"]) == len(sentence.split())

    bench = tmp_path / "bench"
    convnlp(
        "bench",
        *conll_args(conll_files),
        "bench.encoders=[plain]",
        "bench.baseline=plain",
        f"bench.checkpoints=[{run / 'best'}]",
        "bench.threads=[1]",
        "bench.repetitions=1",
        "bench.seconds=0.01",
        "bench.sentences=12",
        "bench.latency_sentences=4",
        "bench.lengths=[]",
        "bench.neighbours=[0]",
        "bench.peers=[]",
        "bench.profile=true",
        "bench.progress=false",
        "bench.runtimes=[torch,onnx,onnx-int8]",
        f"hydra.run.dir={bench}",
        cwd=tmp_path,
    )
    saved = json.loads((bench / "bench.json").read_text())
    name = run.name
    scored = convnlp("eval", f"checkpoint={run / 'best'}", *conll_args(conll_files), "data.split=test", cwd=tmp_path)
    assert saved["encoders"][name]["accuracy"] is not None
    evaluated = json.loads(scored.stdout[: scored.stdout.rindex("}") + 1])
    assert saved["encoders"][name]["accuracy"] == pytest.approx(evaluated["accuracy"])
    # the same checkpoint exported: float32 ONNX scores as PyTorch does; int8 is timed and scored too
    assert saved["encoders"][f"{name}/onnx"]["accuracy"] == saved["encoders"][name]["accuracy"]
    assert saved["encoders"][f"{name}/onnx-int8"]["accuracy"] > 0.5
    assert "static int8 calibrated on 12 examples of the bench's training split" in saved["peers"][f"{name}/onnx-int8"]
    assert (bench / "onnx" / "2-onnx" / "model.onnx").is_file() and (
        bench / "onnx" / "3-onnx-int8" / "export.json"
    ).is_file()
    for subject in (name, f"{name}/onnx", f"{name}/onnx-int8"):
        assert {r["measure"] for r in saved["raw"] if r["encoder"] == subject} == {"infer", "latency"}
    stages = saved["profile"][name]["stages"]
    assert set(stages) == {"input", "network", "output"} and sum(stages.values()) == pytest.approx(1.0)
    assert "features" in saved["profile"][name]["parts"]
    assert "word features [lower,suffix2,shape]" in saved["peers"][name]


def test_classification_reads_word_features_too(tmp_path, review_files):
    args = [*review_args(review_files), *TINY_CLASSIFIER, "task.features=[lower,suffix3]", "trainer.max_epochs=1"]
    convnlp("train", *args, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    predicted = convnlp("predict", f"checkpoint={run / 'best'}", cwd=tmp_path, input="a fine film\n")
    assert json.loads(predicted.stdout)["label"] is not None


def test_a_misspelt_feature_is_one_line_before_any_work(tmp_path):
    result = convnlp("train", "task.features=[lower,sufix3]", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "task.features=['lower', 'sufix3'] must list word features" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_refuses_a_checkpoint_of_another_task(tmp_path):
    from convnlp.bench.subjects import Trained
    from tests.test_ensemble import save_classifier

    path = save_classifier(tmp_path / "classifier", 0)
    with pytest.raises(
        UserError,
        match=r"bench.checkpoints: .*classifier is a task=classification checkpoint; "
        r"this bench is task=tagging",
    ):
        Trained(path, "tagging", torch.device("cpu"), 1000)


def test_the_recommended_ud_tagger_composes_and_validates():
    from hydra import compose, initialize_config_module

    from convnlp.config import validate

    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=ud_tagger"])
        dilated = compose(config_name="train", overrides=["experiment=ud_tagger", "encoder=dilated"])
    cfg = validate(cfg)
    assert (cfg.data.name, cfg.tokenizer.name, cfg.encoder.name, cfg.task.pooling) == (
        "ud_ewt",
        "word",
        "plain",
        "first",
    )
    assert "suffix3" in cfg.task.features and cfg.task.word_layers == 0
    assert validate(dilated).encoder.name == "dilated"  # the experiment sets nothing only one family has
