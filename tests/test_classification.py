"""Classification heads (masking, DPCNN length arithmetic), metrics and prediction records."""

import math

import pytest
import torch

from convnlp.data import tokenizer as tok
from convnlp.model import build_model
from convnlp.tasks import classification as cls

TASK = {
    "name": "classification",
    "embedding_dim": 8,
    "embedding_dropout": 0.0,
    "pooling": "max",
    "conv_blocks": 0,
    "conv_kernel": 3,
    "hidden": 0,
    "dropout": 0.0,
}
ENCODERS = {
    "dilated": {
        "name": "dilated",
        "width": 12,
        "kernel": 3,
        "dilations": [1, 2],
        "blocks": 1,
        "shared": False,
        "activation": "relu",
        "norm": "layer",
        "dropout": 0.0,
    },
    "wide": {"name": "wide", "width": 4, "kernels": [1, 3, 5], "activation": "relu", "norm": "none", "dropout": 0.0},
    "bilstm": {"name": "bilstm", "hidden": 6, "layers": 1, "bidirectional": True, "dropout": 0.0},
}
TEXTS = ["a good film", "bad", "the plot was dull and the acting was worse than anything else"]


@pytest.mark.parametrize("encoder", ["dilated", "wide", "bilstm"])
@pytest.mark.parametrize("conv_blocks", [0, 3])
@pytest.mark.parametrize("pooling", ["max", "mean", "attention"])
def test_a_texts_scores_do_not_depend_on_its_batch(pooling, conv_blocks, encoder):
    tokenizer = tok.build("char", TEXTS)
    torch.manual_seed(0)
    model = build_model(
        {**TASK, "pooling": pooling, "conv_blocks": conv_blocks}, ENCODERS[encoder], tokenizer.get_vocab_size(), 3
    ).eval()
    ids = tok.encode_texts(tokenizer, TEXTS)
    together = model(cls.make_batch({"ids": ids}, [0, 1, 2]))
    for i in range(3):
        alone = model(cls.make_batch({"ids": ids}, [i]))
        torch.testing.assert_close(together[i], alone[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("conv_blocks", [0, 2])
@pytest.mark.parametrize("pooling", ["max", "mean", "attention"])
def test_values_at_masked_positions_never_matter(pooling, conv_blocks):
    torch.manual_seed(0)
    head = cls.ClassificationHead(
        cls.ClassificationConfig(pooling=pooling, conv_blocks=conv_blocks, dropout=0.0), 4, 3
    ).eval()
    h = torch.randn(2, 9, 4)
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    noisy = h.clone()
    noisy[0, 5:] = 1e4 * torch.randn(4, 4)  # padding holding anything at all
    torch.testing.assert_close(head(noisy, mask), head(h, mask), rtol=0, atol=1e-5)
    torch.testing.assert_close(head(h[:1, :5], mask[:1, :5]), head(h, mask)[:1], rtol=0, atol=1e-5)


def test_pooling_values():
    h = torch.tensor([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert cls.ClassificationHead(cls.ClassificationConfig(pooling="max"), 2, 2).pool(h, mask).tolist() == [[3.0, -2.0]]
    assert cls.ClassificationHead(cls.ClassificationConfig(pooling="mean"), 2, 2).pool(h, mask).tolist() == [
        [2.0, -3.0]
    ]
    attention = cls.ClassificationHead(cls.ClassificationConfig(pooling="attention"), 2, 2).pool(h, mask)
    assert 1.0 <= attention[0, 0] <= 3.0 and -4.0 <= attention[0, 1] <= -2.0  # a convex mix of real rows
    nothing = torch.zeros(1, 3, dtype=torch.bool)  # a text with no symbols pools to zeros, not nan
    for pooling in ("max", "mean", "attention"):
        assert cls.ClassificationHead(cls.ClassificationConfig(pooling=pooling), 2, 2).pool(h, nothing).tolist() == [
            [0.0, 0.0]
        ]


@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 9, 33])
@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_dpcnn_halves_the_length_between_blocks(length, blocks):
    reduce = cls.ConvReduction(4, blocks, 3)
    out, mask = reduce(torch.randn(2, length, 4), torch.ones(2, length, dtype=torch.bool))
    expected = length
    for _ in range(blocks - 1):
        expected = math.floor((expected + 2 - 3) / 2) + 1  # max pool, kernel 3, stride 2, padding 1
    assert out.shape == (2, expected, 4) and mask.shape == (2, expected) and bool(mask.all())
    assert expected == math.ceil(length / 2 ** (blocks - 1))
    padded = torch.cat([torch.ones(1, length), torch.zeros(1, 5)], dim=1).bool()  # same text, padded
    out_padded, mask_padded = reduce(torch.cat([torch.randn(1, length, 4), torch.zeros(1, 5, 4)], dim=1), padded)
    assert int(mask_padded.sum()) == expected


def test_metrics_against_hand_computed_values():
    gold = ["a", "a", "a", "b", "b", "c", "new"]
    predicted = ["a", "a", "b", "b", "c", "c", "a"]
    m = cls.metrics(gold, predicted, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 7)
    # F1: a = 2*2/(3+3) = 2/3; b = 2*1/(2+2) = 1/2; c = 2*1/(1+2) = 2/3; new = 0 (never predicted)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 0) / 4)
    assert m["confusion_labels"] == ["a", "b", "c", "new"]
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    assert m["examples"] == 7


def test_label_vocabulary_orders_numbers_as_numbers():
    assert cls.label_vocabulary({"label": ["10", "2", "1", "2"]}) == ["1", "2", "10"]
    assert cls.label_vocabulary({"label": ["pos", "neg"]}) == ["neg", "pos"]


def test_unseen_labels_are_reported_and_kept_as_errors(caplog):
    tokenizer = tok.build("char", ["ab"])
    encoded = cls.encode({"text": ["a", "b"], "label": ["x", "new"]}, tokenizer, ["x"], "dev.csv")
    assert encoded["label"] == [0, -100]
    assert "dev.csv: 1 text(s) carry labels never seen in training: new (1)" in caplog.text


def test_predict_records_give_label_probabilities_and_empty_texts():
    tokenizer = tok.build("word", TEXTS)
    torch.manual_seed(0)
    model = build_model(TASK, ENCODERS["dilated"], tokenizer.get_vocab_size(), 2)
    records = cls.predict_records(
        model, tokenizer, ["neg", "pos"], ["a good film", "", "bad"], torch.device("cpu"), TASK
    )
    assert [r["text"] for r in records] == ["a good film", "", "bad"]
    assert records[1] == {"text": "", "label": None, "probabilities": None, "error": "empty text"}
    for r in (records[0], records[2]):
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_overfits_a_tiny_set():
    """Loss goes to ~0 and every training text is classified right: the head can learn."""
    texts = ["great fun", "awful mess", "superb", "dull film", "lovely story", "boring plot"]
    labels = ["pos", "neg", "pos", "neg", "pos", "neg"]
    tokenizer = tok.build("char", texts)
    torch.manual_seed(0)
    model = build_model({**TASK, "conv_blocks": 2}, ENCODERS["dilated"], tokenizer.get_vocab_size(), 2)
    encoded = cls.encode({"text": texts, "label": labels}, tokenizer, ["neg", "pos"], "train")
    batch = cls.make_batch(encoded, list(range(len(texts))))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss, count = cls.loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert count == 6 and loss.item() < 0.01
    model.eval()
    result = cls.evaluate(
        model, tokenizer, ["neg", "pos"], {"text": texts, "label": labels}, TASK, torch.device("cpu"), 1000
    )
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0


def test_token_dropout_replaces_real_symbols_with_unk_in_training_only():
    tokenizer = tok.build("word", TEXTS)
    torch.manual_seed(0)
    model = build_model({**TASK, "token_dropout": 0.5}, ENCODERS["dilated"], tokenizer.get_vocab_size(), 2)
    seen = []
    model.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    batch = cls.make_batch({"ids": tok.encode_texts(tokenizer, TEXTS)}, [0, 1, 2])
    model.train()(batch)
    dropped = seen[-1] != batch["ids"]
    assert dropped.any() and bool((seen[-1][dropped] == tok.UNK_ID).all())
    assert not bool(dropped[~batch["mask"]].any())  # padding stays padding
    model.eval()(batch)
    assert torch.equal(seen[-1], batch["ids"])
