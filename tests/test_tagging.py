"""Tagging head, metrics and long-sentence prediction."""

import pytest
import torch

from convnlp.data import tokenizer as tok
from convnlp.data.batching import collate
from convnlp.model import build_model
from convnlp.tasks import tagging

TASK = {
    "name": "tagging",
    "embedding_dim": 8,
    "embedding_dropout": 0.0,
    "pooling": "first_last",
    "word_layers": 2,
    "word_kernel": 3,
    "word_dropout": 0.0,
    "predict_max_chars": 2000,
    "predict_context_words": 16,
}
ENCODER = {
    "name": "dilated",
    "width": 12,
    "kernel": 3,
    "dilations": [1, 2],
    "blocks": 1,
    "shared": False,
    "activation": "relu",
    "norm": "layer",
    "dropout": 0.0,
}


def model_for(tokenizer, pooling="first_last", **task):
    torch.manual_seed(0)
    return build_model({**TASK, "pooling": pooling, **task}, ENCODER, tokenizer.get_vocab_size(), 5).eval()


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "first_last"])
def test_head_respects_masking(pooling):
    """A sentence's word scores do not change when a longer sentence shares its batch."""
    tokenizer = tok.build("char", [["abc", "de", "fgh"]])
    model = model_for(tokenizer, pooling)
    short, long = ["ab", "c"], ["abc", "de", "fgh", "ab", "cd", "e"]
    alone = model(collate(*tok.encode(tokenizer, [short])))[0]
    both = model(collate(*tok.encode(tokenizer, [short, long])))[0, :2]
    torch.testing.assert_close(both, alone, rtol=0, atol=1e-5)


def test_mean_pooling_averages_each_words_symbols():
    head = tagging.TaggingHead(tagging.TaggingConfig(pooling="mean", word_layers=0), 2, 3)
    h = torch.tensor([[[1.0, 0], [3, 0], [0, 0], [5, 10]]])  # (1, 4, 2)
    pooled = head.pool(h, torch.tensor([[0, 3]]), torch.tensor([[1, 3]]))
    assert pooled.tolist() == [[[2.0, 0.0], [5.0, 10.0]]]


def test_windows_cover_every_word_once():
    lengths = [3, 8, 1, 12, 5] * 40
    spans = tagging.windows(lengths, max_chars=60, context=3)
    cores = [w for _, _, c, d in spans for w in range(c, d)]
    assert cores == list(range(len(lengths)))
    for a, b, c, d in spans:
        assert a <= c < d <= b and sum(lengths[a:b]) + (b - a - 1) <= 60
    assert tagging.windows([4000], max_chars=60, context=3) == [(0, 1, 0, 1)]  # one huge word
    for a, b, c, d in tagging.windows([30] * 4, max_chars=70, context=16):  # context shrinks to fit
        assert a <= c < d <= b and 30 * (b - a) + (b - a - 1) <= 70


def test_long_sentence_is_tagged_completely_and_like_a_full_pass():
    tokenizer = tok.build("char", [["the", "cat", "sat", "on", "a", "mat"]])
    model = model_for(tokenizer)
    labels = ["A", "B", "C", "D", "E"]
    words = ["the", "cat", "sat", "on", "a", "mat"] * 150  # 900 words, about 3000 characters
    full = tagging.predict(model, tokenizer, labels, [words], torch.device("cpu"), max_chars=10**6)
    # context far wider than the receptive field (61 chars, 7 words): windows change nothing
    windowed = tagging.predict(model, tokenizer, labels, [words, []], torch.device("cpu"), max_chars=300, context=20)
    assert len(windowed[0]) == 900 and None not in windowed[0]
    assert windowed[0] == full[0] and windowed[1] == []


def test_metrics_accuracy_and_seqeval():
    gold = [["B-PER", "O", "B-LOC", "I-LOC"], ["O"]]
    pred = [["B-PER", "O", "B-LOC", "O"], ["O"]]
    m = tagging.metrics(gold, pred)
    assert m["accuracy"] == 0.8 and m["tokens"] == 5
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert "f1" not in tagging.metrics([["NOUN", "VERB"]], [["NOUN", "NOUN"]])


def test_unseen_tags_count_as_errors_and_are_reported(caplog):
    tokenizer = tok.build("char", [["a"]])
    encoded = tagging.encode_split([["a", "a"]], [["X", "NEW"]], tokenizer, ["X"], "test.txt")
    assert encoded["tags"] == [[0, -100]]
    assert "test.txt: 1 token(s) carry tags never seen in training: NEW (1)" in caplog.text
    assert tagging.metrics([["X", "NEW"]], [["X", "X"]])["accuracy"] == 0.5
