"""Generation: the decoder's length arithmetic, padding, both losses on a tiny overfit set,
decoding at the end symbol, metrics against hand-computed values, too-long pairs."""

import logging

import datasets
import pytest
import torch

from convnlp.data import tokenizer as tok
from convnlp.decoders import output_lengths
from convnlp.decoders.deconv import DeconvConfig, DeconvDecoder, transposed_length, upsampling_plan
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.tasks import generation as gen

DECODER = {
    "name": "deconv",
    "bottleneck": "sequence",
    "source_length": 12,
    "down": 2,
    "width": 32,
    "max_length": 12,
    "stride": 2,
    "kernel": 4,
    "strides": [],
    "kernels": [],
    "rest_dilations": [1, 2],
    "rest_kernel": 3,
    "activation": "relu",
    "norm": "layer",
    "dropout": 0.0,
    "too_long": "error",
    "output_length": "fixed",
    "length_ratio": 2,
    "length_extra": 6,
}
ENCODER = {
    "name": "dilated",
    "width": 32,
    "kernel": 3,
    "dilations": [1, 2],
    "blocks": 1,
    "shared": False,
    "activation": "relu",
    "norm": "layer",
    "dropout": 0.0,
}
TASK = {
    "name": "generation",
    "embedding_dim": 16,
    "embedding_dropout": 0.0,
    "token_dropout": 0.0,
    "target_tokens": "word",
    "loss": "ce",
    "decoder": DECODER,
}
PAIRS = [
    ("cat", "K AE1 T"),
    ("dog", "D AO1 G"),
    ("see", "S IY1"),
    ("tree", "T R IY1"),
    ("book", "B UH1 K"),
    ("moon", "M UW1 N"),
    ("aa", "AA1 AA1"),
    ("hello", "HH AH0 L OW1"),
]


def task_with(loss="ce", bottleneck="sequence", **decoder):
    return {**TASK, "loss": loss, "decoder": {**DECODER, "bottleneck": bottleneck, **decoder}}


def split_of(pairs):
    return datasets.Dataset.from_dict({"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})


# ------------------------------------------------------------------------ length arithmetic


@pytest.mark.parametrize(
    "code,max_length,stride,kernel,strides,kernels,expected",
    [
        (1, 32, 2, 4, [], [], [2, 4, 8, 16, 32]),  # the vector code doubled five times
        (8, 32, 2, 4, [], [], [16, 32]),
        (8, 30, 2, 4, [], [], [16, 32]),  # at least max_length, then cropped
        (4, 20, 3, 3, [], [], [12, 36]),  # odd kernel - stride: (L - 1) * s + k - 2p
        (4, 20, 2, 4, [3, 2], [5, 4], [12, 24]),  # explicit per-layer strides and kernels
        (32, 32, 2, 4, [], [], []),  # the code is already long enough
    ],
)
def test_upsampling_plan_reaches_max_length(code, max_length, stride, kernel, strides, kernels, expected):
    plan = upsampling_plan(code, max_length, stride, kernel, strides, kernels)
    assert [p["length_out"] for p in plan] == expected
    for p in plan:
        assert p["length_out"] == (p["length_in"] - 1) * p["stride"] - 2 * p["padding"] + p["kernel"]
        # torch agrees with the arithmetic
        conv = torch.nn.ConvTranspose1d(1, 1, p["kernel"], p["stride"], padding=p["padding"])
        assert conv(torch.zeros(1, 1, p["length_in"])).shape[-1] == p["length_out"]


def test_upsampling_plan_errors_are_one_line():
    with pytest.raises(
        UserError,
        match=r"decoder.strides=\[2\] reach 16 positions \(8 -> 16\), fewer than "
        r"decoder.max_length=32",
    ):
        upsampling_plan(8, 32, strides=[2])
    with pytest.raises(UserError, match="decoder.kernels has 1 entries but there are 2 upsampling layers"):
        upsampling_plan(8, 32, strides=[2, 2], kernels=[4])
    with pytest.raises(UserError, match="does not grow the length"):
        upsampling_plan(1, 8, stride=2, kernel=1)
    assert transposed_length(5, 4, 2) == 10 and transposed_length(5, 3, 2) == 11


@pytest.mark.parametrize(
    "bottleneck,down,max_length", [("vector", 0, 12), ("sequence", 2, 12), ("sequence", 0, 24), ("sequence", 1, 7)]
)
def test_decoder_output_has_exactly_max_length_positions(bottleneck, down, max_length):
    decoder = DeconvDecoder(
        DeconvConfig(
            bottleneck=bottleneck,
            source_length=12,
            down=down,
            width=16,
            max_length=max_length,
            rest_dilations=[1, 2],
            output_length="fixed",
        ),
        8,
        5,
    )
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[-1])) for m in decoder.up]
    out = decoder(torch.randn(3, 10, 8), torch.ones(3, 10, dtype=torch.bool))
    assert out.shape == (3, max_length, 5)
    assert seen == [p["length_out"] for p in decoder.plan]
    assert decoder.lengths()[-1] == ("crop to max_length", max_length)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("bottleneck", ["vector", "sequence"])
def test_outputs_do_not_depend_on_the_batchs_padding(bottleneck):
    tokenizer = tok.build("char", [s for s, _ in PAIRS])
    model = build_model(task_with(bottleneck=bottleneck), ENCODER, tokenizer.get_vocab_size(), 9).eval()
    ids = tok.encode_texts(tokenizer, ["cat", "hello"])
    alone = model(gen.make_batch({"ids": ids[:1]}, [0]))
    together = model(gen.make_batch({"ids": ids}, [0, 1]))
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_source_output_length_gives_each_source_its_own_positions():
    cfg = {**DECODER, "output_length": "source", "length_ratio": 2, "length_extra": 3, "max_length": 12}
    assert output_lengths(cfg, torch.tensor([1, 3, 5, 9])).tolist() == [5, 9, 12, 12]  # at most max_length
    assert output_lengths(DECODER, torch.tensor([1, 3])).tolist() == [12, 12]  # fixed: all of them
    decoder = DeconvDecoder(
        DeconvConfig(
            source_length=12,
            down=0,
            width=16,
            max_length=12,
            rest_dilations=[1, 2],
            output_length="source",
            length_ratio=2,
            length_extra=3,
        ),
        8,
        5,
    )
    mask = torch.tensor([[True] * 2 + [False] * 2, [True] * 1 + [False] * 3])
    assert decoder(torch.randn(2, 4, 8), mask).shape == (2, 7, 5)  # cropped to the longest output, 2 * 2 + 3
    assert decoder.lengths()[-1] == ("a source of n symbols: min(2n + 3, max_length)", 12)


@pytest.mark.parametrize("bottleneck", ["vector", "sequence"])
def test_source_output_length_does_not_depend_on_the_batch(bottleneck):
    tokenizer = tok.build("char", [s for s, _ in PAIRS])
    task = task_with(bottleneck=bottleneck, output_length="source", length_ratio=2, length_extra=1)
    model = build_model(task, ENCODER, tokenizer.get_vocab_size(), 9).eval()
    ids = tok.encode_texts(tokenizer, ["cat", "hello"])
    alone = model(gen.make_batch({"ids": ids[:1]}, [0]))
    together = model(gen.make_batch({"ids": ids}, [0, 1]))
    assert alone.shape[1] == 7 and together.shape[1] == 11
    assert torch.allclose(alone[0], together[0, :7], atol=1e-5)


def test_a_source_longer_than_the_window_is_refused_by_the_decoder():
    decoder = DeconvDecoder(
        DeconvConfig(source_length=4, down=1, width=16, max_length=8, rest_dilations=[1], output_length="fixed"), 8, 5
    )
    mask = torch.tensor([[True] * 6])
    with pytest.raises(ValueError, match="a source of 6 symbols does not fit decoder.source_length=4"):
        decoder(torch.randn(1, 6, 8), mask)
    padded = torch.tensor([[True] * 3 + [False] * 3])  # padding beyond the window is fine
    assert decoder(torch.randn(1, 6, 8), padded).shape == (1, 8, 5)


# ------------------------------------------------------------------------ targets, decoding


def test_positions_needed_counts_the_end_symbol_and_ctc_repeats():
    assert gen.positions_needed(["K", "AE1", "T"], "ce") == 4
    assert gen.positions_needed(["K", "AE1", "T"], "ctc") == 4
    assert gen.positions_needed(["AA1", "AA1", "B"], "ctc") == 5  # a blank between the two AA1
    assert gen.positions_needed(["AA1", "AA1", "B"], "ce") == 4


def test_decoding_stops_at_the_end_symbol():
    E, P, B = gen.END, gen.PAD, gen.BLANK
    assert gen.decode_ids([5, 6, 6, E, 7, P], "ce") == [5, 6, 6]  # CE keeps repeats
    assert gen.decode_ids([5, P, 6, E, 7], "ce") == [5, 6]  # specials before </s> are left out
    assert gen.decode_ids([5, 7, 9], "ce") == [5, 7, 9]  # no end symbol: every position
    assert gen.decode_ids([5, 5, B, 5, 6, 6, B, E, E, 7], "ctc") == [5, 5, 6]  # merge, drop blanks, stop
    assert gen.decode_ids([B, B, E, 5], "ctc") == []


def test_label_vocabulary_and_encoding():
    split = split_of(PAIRS)
    labels = gen.label_vocabulary(split, TASK)
    assert labels[:3] == ["<pad>", "</s>", "<blank>"] and labels[3:5] == [
        "AA1",
        "IY1",
    ]  # most frequent first, ties by name
    assert len(labels) == 3 + len({t for _, target in PAIRS for t in target.split()})
    chars = gen.label_vocabulary(split, {**TASK, "target_tokens": "char"})
    assert " " in chars and "K" in chars
    tokenizer = tok.build("char", [s for s, _ in PAIRS])
    encoded = gen.encode(split, tokenizer, labels, "train", TASK)
    assert [labels[i] for i in encoded["target"][0]] == ["K", "AE1", "T", "</s>"]
    batch = gen.make_batch(encoded, [0, 7])
    assert batch["target"].shape == (2, 5) and batch["target_lengths"].tolist() == [4, 5]
    assert gen.describe(encoded) == "8 pairs, 23 target tokens"


def test_too_long_pairs_are_an_error_or_filtered_with_their_count(caplog):
    split = split_of(PAIRS + [("abcdefghijklmno", "AH0"), ("x", " ".join(["AH0"] * 12))])
    labels = gen.label_vocabulary(split, TASK)
    tokenizer = tok.build("char", split["source"])
    with pytest.raises(UserError) as error:
        gen.encode(split, tokenizer, labels, "train", TASK)
    message = str(error.value)
    assert "\n" not in message
    assert "train: 1 target(s) need more than decoder.max_length=12 positions (up to 13; first: 'x' ->" in message
    assert (
        "1 source(s) are longer than decoder.source_length=12 symbols (up to 15; first: 'abcdefghijklmno')" in message
    )
    assert "decoder.too_long=filter" in message
    with caplog.at_level(logging.WARNING):
        encoded = gen.encode(split, tokenizer, labels, "train", task_with(too_long="filter"))
    assert len(encoded["ids"]) == len(PAIRS)
    assert "left out 2 pair(s) (decoder.too_long=filter)" in caplog.text
    # the vector bottleneck has no source window: only the target is too long
    encoded = gen.encode(split, tokenizer, labels, "train", task_with(bottleneck="vector", too_long="filter"))
    assert len(encoded["ids"]) == len(PAIRS) + 1


def test_with_source_output_length_a_target_must_fit_its_own_source(caplog):
    task = task_with(output_length="source", length_ratio=1, length_extra=1)
    split = split_of(PAIRS)  # "see" -> S IY1 fits 1 * 3 + 1 positions; "aa" -> AA1 AA1 needs 4 with CTC
    labels = gen.label_vocabulary(split, task)
    tokenizer = tok.build("char", split["source"])
    assert len(gen.encode(split, tokenizer, labels, "train", task)["ids"]) == len(PAIRS)
    ctc = {**task, "loss": "ctc"}
    with pytest.raises(
        UserError,
        match=r"train: 1 target\(s\) need more than min\(1 x source symbols \+ 1, "
        r"decoder.max_length=12\) positions \(decoder.output_length=source\) "
        r"\(up to 4; first: 'aa' -> 'AA1 AA1'\)",
    ):
        gen.encode(split, tokenizer, labels, "train", ctc)
    with caplog.at_level(logging.WARNING):  # at evaluation: warned and counted, nothing left out
        gen.report_unseen(split, labels, "test", ctc, tokenizer)
    assert "test: 1 target(s) need more than min(1 x source symbols + 1" in caplog.text


# ---------------------------------------------------------------------------------- metrics


def test_metrics_against_hand_computed_values():
    references = [
        [["K", "AE1", "T"]],  # exact
        [["R", "EH1", "D"], ["R", "IY1", "D"]],  # matches the second reference
        [["D", "AO1", "G"]],  # one substitution: distance 1 of 3
        [["HH", "AH0", "L", "OW1"]],
    ]  # no output at all: distance 4 of 4
    predictions = [["K", "AE1", "T"], ["R", "IY1", "D"], ["D", "AA1", "G"], None]
    m = gen.metrics(predictions, references, TASK)
    assert m["wer"] == pytest.approx(2 / 4) and m["accuracy"] == pytest.approx(2 / 4)
    assert m["per"] == pytest.approx((0 + 0 + 1 + 4) / (3 + 3 + 3 + 4))
    # characters of "K AE1 T", "R IY1 D", "D AO1 G" -> "D AA1 G" (1 of 7), "" vs "HH AH0 L OW1" (12 of 12)
    assert m["cer"] == pytest.approx((0 + 0 + 1 + 12) / (7 + 7 + 7 + 12))
    assert m["examples"] == 4 and m["no_output"] == 1
    perfect = gen.metrics([["a", "b", "c", "d", "e"]], [[["a", "b", "c", "d", "e"]]], TASK)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["wer"] == 0.0 and perfect["per"] == 0.0 and perfect["cer"] == 0.0


def test_closest_reference_sets_the_token_error_rate():
    # distance 1 to the 4-token reference, 2 to the 2-token one: the closer one counts
    m = gen.metrics([["A", "B", "C"]], [[["A", "X"], ["A", "B", "C", "D"]]], TASK)
    assert m["per"] == pytest.approx(1 / 4)


def test_character_targets_join_without_spaces():
    task = {**TASK, "target_tokens": "char"}
    assert gen.split_target("ab c", task) == ["a", "b", " ", "c"]
    m = gen.metrics([list("kat")], [[list("cat")]], task)
    assert m["cer"] == pytest.approx(1 / 3) and m["per"] == pytest.approx(1 / 3)


def test_references_are_grouped_by_source():
    split = split_of([("read", "R EH1 D"), ("cat", "K AE1 T"), ("read", "R IY1 D"), ("read", "R EH1 D")])
    sources, references = gen.group_references(split, TASK)
    assert sources == ["read", "cat"]
    assert references == [[["R", "EH1", "D"], ["R", "IY1", "D"]], [["K", "AE1", "T"]]]


# ---------------------------------------------------------------------- training to exactness


@pytest.mark.parametrize(
    "loss,bottleneck,output_length",
    [
        ("ce", "sequence", "fixed"),
        ("ctc", "sequence", "fixed"),
        ("ce", "vector", "fixed"),
        ("ctc", "vector", "fixed"),
        ("ce", "sequence", "source"),
        ("ctc", "sequence", "source"),
    ],
)
def test_overfits_a_tiny_set_to_exact_outputs(loss, bottleneck, output_length):
    task = task_with(loss, bottleneck, output_length=output_length, length_ratio=2, length_extra=2)
    model, tokenizer, labels, (value, count) = overfit(task)
    assert count == len(PAIRS)
    assert value.item() < 0.01
    result = gen.evaluate(model, tokenizer, labels, split_of(PAIRS), task, torch.device("cpu"), 1000)
    assert result["wer"] == 0.0 and result["per"] == 0.0 and result["bleu"] == pytest.approx(100.0)


def overfit(task):
    """A model trained on PAIRS until its loss is about 0: (model, tokenizer, labels, (loss, count))."""
    torch.manual_seed(0)
    split = split_of(PAIRS)
    labels = gen.label_vocabulary(split, task)
    tokenizer = tok.build("char", split["source"])
    encoded = gen.encode(split, tokenizer, labels, "train", task)
    model = build_model(task, ENCODER, tokenizer.get_vocab_size(), len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = gen.make_batch(encoded, list(range(len(PAIRS))))
    for _ in range(400):
        value, count = gen.loss(model(batch), batch, task)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if value.item() < 0.005:
            break
    return model, tokenizer, labels, (value, count)


def test_distillation_gives_each_source_once_with_the_teachers_output():
    task = task_with("ctc")
    teacher, tokenizer, labels, _ = overfit(task)
    split = split_of(
        [
            ("cat", "K AE1 T"),
            ("cat", "K AH0 T"),
            ("dog", "D AO1 G G"),
            ("x" * 13, "AA1"),
            ("x" * 13, "AA1 AA1"),
            ("see", "S IY1"),
            ("cat", "K AE1 T"),
        ]
    )
    columns, counts = gen.distill(split, teacher, tokenizer, labels, task, task, torch.device("cpu"), 1000)
    # the teacher's outputs (it learned cat, dog and see); it cannot read a source longer than
    # decoder.source_length=12, which keeps its references
    assert columns == {
        "source": ["cat", "dog", "x" * 13, "x" * 13, "see"],
        "target": ["K AE1 T", "D AO1 G", "AA1", "AA1 AA1", "S IY1"],
    }
    assert counts == {"sources": 4, "changed": 1, "kept": 1}


def test_predict_records():
    task = task_with()
    split = split_of(PAIRS)
    labels = gen.label_vocabulary(split, task)
    tokenizer = tok.build("char", split["source"])
    model = build_model(task, ENCODER, tokenizer.get_vocab_size(), len(labels))
    records = gen.predict_records(model, tokenizer, labels, ["cat", "", "x" * 13], torch.device("cpu"), task)
    assert records[0]["source"] == "cat" and isinstance(records[0]["output"], str)
    assert records[0]["output"] == " ".join(records[0]["tokens"])
    assert records[1] == {"source": "", "output": None, "tokens": None, "error": "empty text"}
    assert records[2]["output"] is None
    assert records[2]["error"] == "source of 13 symbols is longer than decoder.source_length=12"


# --------------------------------------------------------------------------------- data


def test_cmudict_g2p_keeps_a_words_pronunciations_together():
    from convnlp.data import cmudict_g2p

    splits = cmudict_g2p.load()
    seen = {}
    for split, (sources, _targets) in splits.items():
        for source in sources:
            assert seen.setdefault(source, split) == split
    sources, targets = splits["train"]
    assert len(set(sources)) < len(sources)  # words with several pronunciations
    assert 0.04 < len(splits["test"][0]) / sum(len(s) for s, _ in splits.values()) < 0.06
    assert all(t and all(p.isupper() or p[-1].isdigit() for p in t.split()) for t in targets[:1000])
    assert cmudict_g2p.load()["validation"] == splits["validation"]  # deterministic


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_parallel_tsv_jsonl_and_two_files(tmp_path):
    from convnlp.data import parallel

    tsv = write(tmp_path / "train.tsv", "cat\tK AE1 T\ndog\tD AO1 G\n")
    assert parallel.read(tsv, "auto", "source", "target", "src", "tgt") == (["cat", "dog"], ["K AE1 T", "D AO1 G"])
    jsonl = write(tmp_path / "train.jsonl", '{"en": "cat", "de": "Katze"}\n\n{"en": "dog", "de": "Hund"}\n')
    assert parallel.read(jsonl, "auto", "en", "de", "src", "tgt") == (["cat", "dog"], ["Katze", "Hund"])
    write(tmp_path / "corpus.src", "cat\ndog\n")
    write(tmp_path / "corpus.tgt", "Katze\nHund\n")
    assert parallel.read(str(tmp_path / "corpus"), "auto", "source", "target", "src", "tgt") == (
        ["cat", "dog"],
        ["Katze", "Hund"],
    )


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("a.tsv", "cat\tK AE1 T\ndog D AO1 G\n", "a.tsv:2: 1 tab-separated field(s), expected 2 (source, target)"),
        ("a.tsv", "cat\tK AE1 T\ndog\t\n", "a.tsv:2: empty target (remove the pair, or set data.skip_empty=true)"),
        ("a.jsonl", '{"source": "cat"}\n', "a.jsonl:1: no target field 'target'; the object has: source"),
        ("a.jsonl", '{"source": "cat", "target": 3}\n', "a.jsonl:1: field 'target' is int, not text"),
        ("a.jsonl", '{"source": "cat", \n', "a.jsonl:1: not valid JSON"),
        ("a.txt", "cat\n", "cannot tell the format"),
    ],
)
def test_parallel_errors_name_file_and_line(tmp_path, name, content, message):
    from convnlp.data import parallel

    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as error:
        parallel.read(path, "auto", "source", "target", "src", "tgt")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_parallel_files_must_align_and_skip_empty_counts(tmp_path, caplog):
    from convnlp.data import parallel

    write(tmp_path / "c.src", "cat\ndog\nbird\n")
    write(tmp_path / "c.tgt", "Katze\nHund\n")
    with pytest.raises(UserError, match=r"c.src has 3 lines but .*c.tgt has 2: the files must be line-aligned"):
        parallel.read(str(tmp_path / "c"), "files", "source", "target", "src", "tgt")
    write(tmp_path / "c.tgt", "Katze\n\nVogel\n")
    with pytest.raises(UserError, match=r"c.tgt:2: empty target"):
        parallel.read(str(tmp_path / "c"), "files", "source", "target", "src", "tgt")
    with caplog.at_level(logging.WARNING):
        pairs = parallel.read(str(tmp_path / "c"), "files", "source", "target", "src", "tgt", skip_empty=True)
    assert pairs == (["cat", "bird"], ["Katze", "Vogel"])
    assert "left out 1 pair(s) with an empty side (first at" in caplog.text


def test_load_splits_gives_source_and_target_columns(tmp_path):
    from omegaconf import OmegaConf

    from convnlp.config import validate_group
    from convnlp.data import load_splits

    train = write(tmp_path / "train.tsv", "cat\tK AE1 T\n")
    cfg = validate_group("data", OmegaConf.create({"name": "parallel", "train": train}))
    data = load_splits(cfg, task="generation")
    assert list(data) == ["train"] and data["train"].column_names == ["source", "target"]


def test_code_lengths_and_the_config_check_of_the_arithmetic():
    from omegaconf import OmegaConf

    from convnlp.config import validate
    from convnlp.decoders.deconv import code_lengths

    assert code_lengths("vector", 32, 3) == [1]
    assert code_lengths("sequence", 32, 2) == [32, 16, 8]
    assert code_lengths("sequence", 13, 2) == [13, 7, 4]  # ceil(L / 2) each time
    cfg = OmegaConf.create({"decoder": {**DECODER, "strides": [2], "max_length": 40}})
    with pytest.raises(
        UserError,
        match=r"decoder.strides=\[2\] reach 6 positions \(3 -> 6\), fewer than "
        r"decoder.max_length=40",
    ):
        validate(cfg)
