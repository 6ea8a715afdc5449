"""Checkpoints: round trip, atomic writes, loading runs nothing, clear errors."""

import json

import pytest
import torch

from convnlp import checkpoint
from convnlp.data import tokenizer as tok
from convnlp.data.batching import collate
from convnlp.errors import UserError
from convnlp.model import build_model
from tests.test_tagging import ENCODER, TASK

SENTENCES = [["The", "cat", "sat", "."], ["A", "dog", "barked", "loudly", "!"]]


def make_checkpoint(path):
    tokenizer = tok.build("char", SENTENCES)
    torch.manual_seed(0)
    model = build_model(TASK, ENCODER, tokenizer.get_vocab_size(), 3).eval()
    config = {"task": TASK, "encoder": ENCODER}
    checkpoint.save(path, model, config, tokenizer, ["A", "B", "C"], {"accuracy": 0.5})
    return model, tokenizer


def test_round_trip_gives_identical_outputs(tmp_path):
    model, tokenizer = make_checkpoint(tmp_path / "best")
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == [
        "config.json",
        "labels.json",
        "metrics.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    loaded = checkpoint.load(tmp_path / "best")
    batch = collate(*tok.encode(loaded.tokenizer, SENTENCES))
    assert torch.equal(loaded.model.eval()(batch), model(batch))
    assert loaded.labels == ["A", "B", "C"] and loaded.config["encoder"] == ENCODER


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "last")
    before = (tmp_path / "last" / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were killed mid-write

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        make_checkpoint(tmp_path / "last")
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last"]  # no half-written directory left


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "checkpoint is missing model.safetensors"),
        (lambda d: (d / "labels.json").write_text("{oops"), "labels.json: not valid JSON"),
        (
            lambda d: (d / "labels.json").write_text('["A"]'),
            r"model.safetensors: does not match the checkpoint's model: 'head.output.weight' has shape \(3, ",
        ),
        (
            lambda d: (d / "model.safetensors").write_bytes(b"\0" * 100),
            "model.safetensors: damaged or not a safetensors",
        ),
        (lambda d: (d / "config.json").write_text('{"task": {}}'), "config.json: no encoder group"),
        (lambda d: (d / "tokenizer.json").write_text("{}"), "tokenizer.json: not a valid tokenizer file"),
    ],
)
def test_damaged_checkpoint_fails_in_one_line(tmp_path, damage, message):
    make_checkpoint(tmp_path / "ck")
    damage(tmp_path / "ck")
    with pytest.raises(UserError, match=message) as error:
        checkpoint.load(tmp_path / "ck")
    assert "\n" not in str(error.value)


def test_loading_never_instantiates_targets_from_the_config(tmp_path):
    make_checkpoint(tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["encoder"] = {"_target_": "os.system", "name": "os.system", "command": "touch pwned"}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="config.json: encoder._target_: names code to instantiate"):
        checkpoint.load(tmp_path / "ck")
    assert not (tmp_path / "pwned").exists()


def test_a_save_killed_between_renames_falls_back_to_the_previous_version(tmp_path):
    make_checkpoint(tmp_path / "last")
    (tmp_path / "last").rename(tmp_path / ".last.old")  # the moment between the two renames
    assert checkpoint.load(tmp_path / "last").model is not None


def test_damaged_training_state_is_one_line(tmp_path):
    make_checkpoint(tmp_path / "last")
    (tmp_path / "last" / "training_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="training_state.pt: cannot read the training state"):
        checkpoint.load_training_state(tmp_path / "last")


def _edit_config(directory, edit):
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda c: c.update(_target_="os.system"),
            "config.json: unknown top-level key '_target_'; a run config holds: task, encoder,",
        ),
        (lambda c: c.update(model={"_target_": "os.system"}), "config.json: unknown top-level key 'model'"),
        (lambda c: c["task"].update(_partial_=True), "config.json: task._partial_: names code to instantiate"),
        (
            lambda c: c.update(data={"name": "csv", "train": {"_target_": "builtins.exec"}}),
            "config.json: data.train._target_: names code to instantiate",
        ),
        (
            lambda c: c["encoder"].update(width="${oc.env:HOME}"),
            r"config.json: encoder.width: '\$\{oc.env:HOME\}' is an interpolation; a checkpoint's config holds plain",
        ),
        (
            lambda c: c["encoder"].update(dilations=[1, "${now:%H}"]),
            r"config.json: encoder.dilations\[1\]: '\$\{now:%H\}'",
        ),
        (lambda c: c["encoder"].update(width=-4), "config.json: encoder.width=-4 must be at least 1"),
        (
            lambda c: c["encoder"].update(width="wide"),
            "config.json: encoder.width: Value 'wide' of type 'str' could not",
        ),
        (
            lambda c: c["encoder"].update(name="torch.nn.Module"),
            "config.json: encoder.name='torch.nn.Module' is not known",
        ),
        (lambda c: c["task"].update(name="os"), "config.json: task.name='os' is not known"),
        (lambda c: c["encoder"].update(width="???"), r"config.json: encoder.width: '\?\?\?' \(a missing value\)"),
        (lambda c: c.update(data=[1]), "config.json: data: expected a group of settings, found list"),
        (lambda c: c.update(seed="x"), "config.json: seed: expected a whole number"),
    ],
)
def test_a_hostile_or_broken_config_is_refused_in_one_line(tmp_path, edit, message):
    """Issue 16: a checkpoint's config names no code and holds plain, valid values."""
    make_checkpoint(tmp_path / "ck")
    _edit_config(tmp_path / "ck", edit)
    with pytest.raises(UserError, match=message) as error:
        checkpoint.load(tmp_path / "ck")
    assert "\n" not in str(error.value)


def test_a_truncated_or_forged_weights_file_is_named_as_damaged(tmp_path):
    make_checkpoint(tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="model.safetensors: damaged or not a safetensors file"):
        checkpoint.load(tmp_path / "ck")
    header_size = int.from_bytes(data[:8], "little")  # a header that claims more bytes than the file holds
    header = json.loads(data[8 : 8 + header_size])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 10**9
    forged = json.dumps(header).encode()
    weights.write_bytes(len(forged).to_bytes(8, "little") + forged + data[8 + header_size :])
    with pytest.raises(UserError, match="model.safetensors: damaged or not a safetensors file"):
        checkpoint.load(tmp_path / "ck")


def test_weights_that_disagree_with_the_config_tokenizer_or_labels_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    make_checkpoint(tmp_path / "ck")
    path = tmp_path / "ck" / "model.safetensors"
    weights = load_file(path)
    small = {**weights, "embedding.weight": weights["embedding.weight"][:3]}
    save_file(small, path)
    with pytest.raises(
        UserError,
        match=r"'embedding.weight' has shape \(3, 8\) in the weights, \(\d+, 8\) from "
        r"config.json, tokenizer.json and labels.json \(its rows: the tokenizer's",
    ):
        checkpoint.load(tmp_path / "ck")
    save_file({k: v for k, v in weights.items() if k != "head.output.bias"}, path)
    with pytest.raises(UserError, match="the config's model has a tensor 'head.output.bias' the weights lack"):
        checkpoint.load(tmp_path / "ck")
    save_file({**weights, "extra": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="the weights hold a tensor 'extra' the config's model lacks"):
        checkpoint.load(tmp_path / "ck")
    save_file(weights, path)
    (tmp_path / "ck" / "labels.json").write_text('["A", "A", "B"]')
    with pytest.raises(UserError, match="labels.json: a label appears twice"):
        checkpoint.load(tmp_path / "ck")
    (tmp_path / "ck" / "labels.json").write_text('{"A": 0}')
    with pytest.raises(UserError, match="labels.json: expected a non-empty JSON list of label strings"):
        checkpoint.load(tmp_path / "ck")


class _Payload:
    """Pickles to a call that creates a file: what a hostile training_state.pt would carry."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_training_state_carrying_a_pickled_payload_is_refused_and_never_runs(tmp_path):
    make_checkpoint(tmp_path / "last")
    proof = tmp_path / "payload_ran"
    torch.save({"step": 1, "optimizer": _Payload(proof)}, tmp_path / "last" / "training_state.pt")
    assert not proof.exists()
    with pytest.raises(UserError, match="training_state.pt: cannot read the training state") as error:
        checkpoint.load_training_state(tmp_path / "last")
    assert "\n" not in str(error.value)
    assert not proof.exists(), "loading ran code from the checkpoint"
    torch.load(tmp_path / "last" / "training_state.pt", weights_only=False)  # the payload is live:
    assert proof.exists()  # unpickled, it runs


def test_deeply_nested_json_and_a_training_state_of_another_shape_are_one_line(tmp_path):
    make_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "labels.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="labels.json: JSON nested too deeply"):
        checkpoint.load(tmp_path / "ck")
    for state, message in (
        ([1, 2], "not a training state \\(a list, not a dict\\)"),
        ({"step": 1}, "not a training state of this version \\('optimizer' is missing, expected dict\\)"),
        ({**dict.fromkeys(checkpoint.TRAINING_STATE, {}), "step": "3"}, "'step' is str, expected int"),
    ):
        torch.save(state, tmp_path / "ck" / "training_state.pt")
        with pytest.raises(UserError, match=message):
            checkpoint.load_training_state(tmp_path / "ck")
