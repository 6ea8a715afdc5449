"""ONNX export and the ONNX Runtime predictor: every task x encoder family, real onnxruntime
sessions, the same records as PyTorch; the command line, and its bad input."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("onnxruntime")

from convnlp import checkpoint  # noqa: E402
from convnlp.data import tokenizer as tok  # noqa: E402
from convnlp.errors import UserError  # noqa: E402
from convnlp.export import OPSET, export  # noqa: E402
from convnlp.model import build_model  # noqa: E402
from convnlp.onnx_runtime import load_exported  # noqa: E402
from convnlp.registry import ENCODERS  # noqa: E402
from convnlp.tasks import get_task, task_config  # noqa: E402
from tests.conftest import (
    TINY,
    TINY_CLASSIFIER,
    TINY_GENERATOR,
    bio_sentences,
    conll_args,
    convnlp,
    review_args,
    review_rows,  # noqa: E402
    run_dirs,
    spelling_args,
    spelling_rows,
)

SMALL = {  # every registered encoder family, small
    "plain": ["encoder.width=16", "encoder.layers=2"],
    "residual": ["encoder.width=16", "encoder.layers=2"],
    "dense": ["encoder.width=16", "encoder.growth=8", "encoder.layers_per_block=2", "encoder.blocks=1"],
    "dilated": ["encoder.width=16", "encoder.blocks=1"],
    "wide": ["encoder.width=16"],
    "lstm": ["encoder.hidden=16"],
    "bilstm": ["encoder.hidden=8"],
    "separable": ["encoder.width=16", "encoder.blocks=1"],
}
FAMILIES = ENCODERS.names()  # a family without a SMALL entry fails below: every encoder must export
TASK_ARGS = {
    "tagging": ["task.embedding_dim=8", "task.word_layers=1"],
    "classification": ["task=classification", "task.embedding_dim=8"],
    "generation": ["task=generation", "task.embedding_dim=8", "decoder.width=16", "decoder.rest_dilations=[1,2]"],
}
WORDS = "the film Alice met Bob in Paris a dull story abba stop".split()


def texts(n: int, length: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(max(1, length // 5)))[:length] for _ in range(n)]


# settings beside the encoder that change the graph: words with hashed word features (the UD
# recipe, experiment=ud_tagger), features on characters, subwords
RECIPES = {
    "tagging, words + word features": [
        "tokenizer=word",
        "tokenizer.min_frequency=1",
        "task.embedding_dim=8",
        "task.features=[lower,prefix2,suffix3,shape]",
        "task.feature_rows=50",
        "task.pooling=first",
        "task.word_layers=0",
    ],
    "tagging, characters + word features": [
        "task.embedding_dim=8",
        "task.features=[lower,suffix2]",
        "task.feature_rows=50",
        "task.pooling=first_last",
    ],
    "tagging, bpe": ["tokenizer=bpe", "tokenizer.min_frequency=1", "task.embedding_dim=8"],
    "classification, words + word features": [
        "task=classification",
        "tokenizer=word",
        "tokenizer.min_frequency=1",
        "task.embedding_dim=8",
        "task.features=[lower,shape]",
        "task.feature_rows=50",
    ],
    "generation, bpe": [
        "task=generation",
        "tokenizer=bpe",
        "tokenizer.min_frequency=1",
        "task.embedding_dim=8",
        "decoder.width=16",
        "decoder.rest_dilations=[1,2]",
    ],
}


def make_checkpoint(directory, task: str, family: str, recipe: list[str] | None = None):
    """A checkpoint of an untrained model (seeded): the graph and its parity, not accuracy, are tested."""
    from hydra import compose, initialize_config_module

    overrides = [*(TASK_ARGS[task] if recipe is None else recipe), f"encoder={family}", *SMALL[family]]
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        composed = OmegaConf.to_container(compose(config_name="train", overrides=overrides), resolve=True)
    config = {k: v for k, v in composed.items() if k in checkpoint.CONFIG_KEYS}  # a run's config, as train saves it
    examples = texts(50, 40, 0)  # tagging's vocabulary is counted over given words, as training counts it
    tokenizer = tok.build_from(
        OmegaConf.create(config["tokenizer"]), [t.split() for t in examples] if task == "tagging" else examples
    )
    split = {
        "tagging": {"tags": [["B-X", "O", "I-X"]]},
        "classification": {"label": ["neg", "pos", "mixed"]},
        "generation": {"target": ["A B C D E F G H"]},
    }[task]
    labels = get_task(task).label_vocabulary(split, task_config(config))
    torch.manual_seed(0)
    model = build_model(task_config(config), config["encoder"], tokenizer.get_vocab_size(), len(labels))
    checkpoint.save(directory, model, config, tokenizer, labels, {})
    return directory


def records(model, config, tokenizer, labels, inputs: list[str]) -> list[dict]:
    task = get_task(config["task"]["name"])
    return task.predict_records(
        model, tokenizer, labels, [task.read_input(t) for t in inputs], torch.device("cpu"), task_config(config)
    )


def same(a: list[dict], b: list[dict], tolerance: float = 1e-4) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if key == "probabilities" and x[key] is not None:
                assert x[key].keys() == y[key].keys()
                assert max(abs(x[key][k] - y[key][k]) for k in x[key]) <= tolerance
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", list(TASK_ARGS))
def test_every_task_and_encoder_exports_with_the_same_outputs(tmp_path, task, family):
    source = make_checkpoint(tmp_path / "checkpoint", task, family)
    info = export(source, tmp_path / "onnx")
    assert info["opset"] == OPSET and info["max_abs_difference_at_export"] < 1e-4
    assert {p.name for p in (tmp_path / "onnx").iterdir()} >= {
        "model.onnx",
        "tokenizer.json",
        "labels.json",
        "config.json",
        "export.json",
    }
    exported = load_exported(tmp_path / "onnx")
    onnx_model, config, tokenizer, labels = exported.model, exported.config, exported.tokenizer, exported.labels
    torch_model = checkpoint.load(source).model
    # dynamic shapes: a batch of 1 and of 7, inputs of 1 and of about 500 symbols
    for batch in (texts(1, 1, 1), texts(7, 30, 2), texts(1, 500, 3), texts(7, 500, 4) + texts(3, 1, 5)):
        same(
            records(onnx_model, config, tokenizer, labels, batch),
            records(torch_model, config, tokenizer, labels, batch),
        )


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_tokenizers_and_word_features_export_with_the_same_outputs(tmp_path, recipe):
    task = RECIPES[recipe][0].removeprefix("task=") if RECIPES[recipe][0].startswith("task=") else "tagging"
    source = make_checkpoint(tmp_path / "checkpoint", task, "plain", RECIPES[recipe])
    loaded = checkpoint.load(source)
    torch_model, config, tokenizer, labels = loaded.model, loaded.config, loaded.tokenizer, loaded.labels
    if torch_model.features is not None:  # the padding row is left out of the sum, whatever it holds
        with torch.no_grad():
            torch_model.features.weight[0] = 1.0
        checkpoint.save(source, torch_model, config, tokenizer, labels, {})
    info = export(source, tmp_path / "onnx")
    assert ("features" in info["inputs"]) == ("features" in recipe)  # the graph reads the word features
    exported = load_exported(tmp_path / "onnx")
    onnx_model, config, tokenizer, labels = exported.model, exported.config, exported.tokenizer, exported.labels
    for batch in (texts(1, 1, 1), texts(7, 30, 2), texts(1, 500, 3), ["Alice ,met BOB in Paris-2026 ."]):
        same(
            records(onnx_model, config, tokenizer, labels, batch),
            records(torch_model, config, tokenizer, labels, batch),
        )


def test_export_and_predict_through_the_command_line(tmp_path):
    source = make_checkpoint(tmp_path / "run" / "best", "classification", "dilated")
    result = convnlp("export", f"checkpoint={tmp_path / 'run'}", "format=onnx", cwd=tmp_path)
    assert json.loads(result.stdout)["output"] == str(tmp_path / "run" / "onnx")
    lines = "the film\n\na dull story\n"
    torch_out = convnlp("predict", f"checkpoint={source}", "device=cpu", cwd=tmp_path, input=lines).stdout
    onnx_out = convnlp("predict", f"checkpoint={tmp_path / 'run'}", "runtime=onnx", cwd=tmp_path, input=lines).stdout
    same([json.loads(x) for x in onnx_out.splitlines()], [json.loads(x) for x in torch_out.splitlines()])
    # eval of the exported model: the metrics of the checkpoint
    (tmp_path / "test.tsv").write_text("text\tlabel\nthe film\tpos\na dull story\tneg\nstop abba\tmixed\n")
    data = ["data=tsv", f"data.test={tmp_path / 'test.tsv'}", "data.split=test"]
    metrics = {}
    for runtime, where in (("torch", source), ("onnx", tmp_path / "run" / "onnx")):
        convnlp(
            "eval",
            f"checkpoint={where}",
            f"runtime={runtime}",
            *data,
            "device=cpu",
            f"hydra.run.dir={tmp_path / runtime}",
            cwd=tmp_path,
        )
        metrics[runtime] = json.loads((tmp_path / runtime / "metrics.json").read_text())
    assert metrics["onnx"]["runtime"] == "onnx" and metrics["onnx"]["accuracy"] == metrics["torch"]["accuracy"]
    on_cuda = convnlp(
        "eval", f"checkpoint={tmp_path / 'run'}", "runtime=onnx", "device=cuda", *data, cwd=tmp_path, check=False
    )
    assert on_cuda.returncode == 2 and on_cuda.stderr.strip() == (
        "convnlp: error: device=cuda: runtime=onnx runs on the CPU (ONNX Runtime's CPU provider); set device=auto "
        "or cpu, or runtime=torch"
    )

    again = convnlp("export", f"checkpoint={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"convnlp: error: output={tmp_path / 'run' / 'onnx'}: exists and is not an empty directory; choose a new "
        "directory"
    )
    unknown = convnlp(
        "export", f"checkpoint={tmp_path / 'run'}", "format=tflite", "output=x", cwd=tmp_path, check=False
    )
    assert unknown.stderr.strip() == "convnlp: error: format='tflite' is not supported; choose one of: onnx"
    missing = convnlp("export", f"checkpoint={tmp_path / 'absent'}", cwd=tmp_path, check=False)
    assert missing.stderr.strip() == f"convnlp: error: {tmp_path / 'absent'}: checkpoint directory not found"
    int8 = ("export", f"checkpoint={tmp_path / 'run'}", "quantize=int8")
    (tmp_path / "calibration.txt").write_text("the film\n\na dull story\n")
    result = json.loads(convnlp(*int8, "calibration=calibration.txt", cwd=tmp_path).stdout)
    assert result["calibration"] == "2 non-empty lines of calibration.txt" and result["output"] == str(
        tmp_path / "run" / "onnx-int8"
    )
    for args, line in (
        (["quantize=int4", "output=x"], "quantize='int4' is not supported; choose null (float32) or int8"),
        (
            [*int8[1:], "output=x", "calibration=absent.txt"],
            "calibration=absent.txt: cannot open (No such file or directory)",
        ),
        (
            [*int8[1:], "output=x", "calibration_examples=0"],
            "calibration_examples=0 must be a whole number, at least 1",
        ),
    ):
        bad = convnlp("export", f"checkpoint={tmp_path / 'run'}", *args, cwd=tmp_path, check=False)
        assert bad.returncode == 2 and bad.stderr.strip() == f"convnlp: error: {line}", bad.stderr
    (tmp_path / "empty.txt").write_text("\n \n")
    bad = convnlp(*int8, "output=x", "calibration=empty.txt", cwd=tmp_path, check=False)
    assert bad.stderr.strip() == "convnlp: error: calibration=empty.txt: no non-empty lines to calibrate on"
    config = json.loads((source / "config.json").read_text())  # training data that is not on this machine
    config["data"] = {
        **config["data"],
        "name": "tsv",
        "train": str(tmp_path / "gone.tsv"),
        "validation": None,
        "test": None,
        "text_column": "text",
        "label_column": "label",
        "encoding": "utf-8",
        "skip_empty": False,
        "quoting": "auto",
    }
    (source / "config.json").write_text(json.dumps(config))
    bad = convnlp(*int8, "output=x", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert (
        bad.stderr.startswith(
            "convnlp: error: quantize=int8 calibrates on the checkpoint's training data (tsv), "
            "which cannot be read here ("
        )
        and "give calibration=FILE" in bad.stderr
    )
    assert not (tmp_path / "x").exists()
    (tmp_path / "run" / "onnx" / "model.onnx").write_bytes(b"not a model")
    damaged = convnlp(
        "predict", f"checkpoint={tmp_path / 'run' / 'onnx'}", "runtime=onnx", cwd=tmp_path, input=lines, check=False
    )
    assert damaged.returncode == 2 and damaged.stderr.strip().startswith(
        f"convnlp: error: {tmp_path / 'run' / 'onnx' / 'model.onnx'}: not a usable ONNX model ("
    )


def test_a_failed_export_leaves_nothing_and_says_why_in_one_line(tmp_path, monkeypatch):
    from convnlp import export as module

    source = make_checkpoint(tmp_path / "checkpoint", "tagging", "dilated")
    (tmp_path / "calibration.txt").write_text("Alice met Bob\n")

    def failing(*args):
        raise AssertionError()  # as ONNX Runtime's quantizer fails: a bare assert, no message

    monkeypatch.setattr(module, "quantize", failing)
    (tmp_path / "out").mkdir()  # an empty directory the user made is allowed, and stays
    with pytest.raises(UserError) as error:
        export(source, tmp_path / "out", quantized="int8", calibration=str(tmp_path / "calibration.txt"))
    assert str(error.value) == "quantize=int8: ONNX Runtime cannot quantize dilated / task=tagging: AssertionError"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.txt", "checkpoint", "out"]
    assert not any((tmp_path / "out").iterdir())
    with pytest.raises(UserError, match=r"^calibration=.*calibration.txt: calibration is for quantize=int8"):
        export(source, tmp_path / "out", calibration=str(tmp_path / "calibration.txt"))
    (tmp_path / "latin1.txt").write_bytes(b"Alice\ncaf\xe9 au lait\n")
    with pytest.raises(UserError, match=r"latin1.txt:2: cannot decode byte b'\\xe9' at column 4 as utf-8"):
        export(source, tmp_path / "out", quantized="int8", calibration=str(tmp_path / "latin1.txt"))
    monkeypatch.undo()
    info = export(
        source,
        tmp_path / "out",
        quantized="int8",
        calibration=str(tmp_path / "latin1.txt"),
        calibration_examples=1,
        encoding="latin-1",
    )
    assert info["calibration"] == f"the first 1 of 2 non-empty lines of {tmp_path / 'latin1.txt'}"


def test_the_wrong_runtime_for_a_directory_is_one_line_with_the_way_on(tmp_path):
    import convnlp as api

    run = tmp_path / "run"
    source = make_checkpoint(run / "best", "tagging", "dilated")
    with pytest.raises(
        UserError,
        match=rf"^{run / 'best'}: no model.onnx here; runtime=onnx runs an exported model: "
        rf"convnlp export checkpoint={run / 'best'} writes one$",
    ):
        api.load(source, runtime="onnx")
    export(run, run / "onnx-int8", quantized="int8")
    with pytest.raises(UserError, match=rf"^{run}: no model.onnx here; .*: give {run / 'onnx-int8'}$"):
        api.load(run, runtime="onnx")
    with pytest.raises(UserError, match=rf"^{run / 'best'}: no model.onnx here; .*: give {run / 'onnx-int8'}$"):
        api.load(source, runtime="onnx")
    with pytest.raises(
        UserError,
        match=rf"^{run / 'onnx-int8'}: an exported ONNX model \(model.onnx\), not a PyTorch "
        "checkpoint; run it with runtime=onnx$",
    ):
        api.load(run / "onnx-int8")
    with pytest.raises(UserError, match="runs one exported model, not an ensemble"):
        api.load([run / "onnx-int8", run / "onnx-int8"], runtime="onnx")
    with pytest.raises(UserError, match=r"^threads=-1 must be a whole number, 0 or more$"):
        api.load(run / "onnx-int8", runtime="onnx", threads=-1)
    assert (
        api.load(run / "onnx-int8", runtime="onnx", threads=1).model.session.get_session_options().intra_op_num_threads
        == 1
    )


def test_the_python_api_runs_an_exported_model(tmp_path):
    import convnlp as api

    source = make_checkpoint(tmp_path / "checkpoint", "tagging", "dilated")
    export(source, tmp_path / "onnx")
    inputs = ["Alice met Bob in Paris .", "", "a"]
    assert api.load(tmp_path / "onnx", runtime="onnx").predict(inputs) == api.load(source).predict(inputs)
    with pytest.raises(UserError, match="runtime='tflite' is not valid"):
        api.load(source, runtime="tflite")


TRAINED_INPUTS = {
    "tagging": lambda: [" ".join(w for w, _ in s) for s in bio_sentences(40, 9)],
    "classification": lambda: [text for text, _ in review_rows(40, 9)],
    "generation": lambda: [source for source, _ in spelling_rows(40, 9)],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TRAINED_INPUTS))
def test_trained_models_float32_and_int8(tmp_path, task, conll_files, review_files, spelling_files):
    """A small trained model of each task: float32 ONNX gives PyTorch's records and metrics;
    int8 (calibrated on the run's own training data) stays close, and says how close."""
    import convnlp as api

    args = {
        "tagging": [*conll_args(conll_files), *TINY, "trainer.max_steps=150"],
        "classification": [
            *review_args(review_files),
            *TINY_CLASSIFIER,
            "tokenizer=word",
            "trainer.max_epochs=15",
            "trainer.batch_tokens=150",
            "optim.warmup_steps=10",
            "task.dropout=0.3",
            "task.embedding_dropout=0.1",
            "task.token_dropout=0",
        ],  # as test_cli's classifier
        "generation": [*spelling_args(spelling_files), *TINY_GENERATOR, "trainer.max_steps=150"],
    }[task]
    convnlp("train", *args, "trainer.threads=1", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    convnlp("export", f"checkpoint={run}", cwd=tmp_path)
    result = json.loads(convnlp("export", f"checkpoint={run}", "quantize=int8", cwd=tmp_path).stdout)
    assert result["output"] == str(run / "onnx-int8") and result["quantized"] == "int8"
    assert result["calibration"].endswith("training split") and result["int8_agreement_with_float32"] >= 0.9
    import onnx

    ops = {node.op_type for node in onnx.load(str(run / "onnx-int8" / "model.onnx")).graph.node}
    assert "QLinearConv" in ops and "QLinearConv" not in {
        n.op_type for n in onnx.load(str(run / "onnx" / "model.onnx")).graph.node
    }
    inputs = TRAINED_INPUTS[task]()
    torch_records = api.load(run, device="cpu").predict(inputs)
    same(api.load(run / "onnx", runtime="onnx").predict(inputs), torch_records)
    int8 = api.load(run / "onnx-int8", runtime="onnx").predict(inputs)
    assert [r.keys() for r in int8] == [r.keys() for r in torch_records]
    metrics = {}
    for name, where in (("torch", run), ("onnx", run / "onnx"), ("int8", run / "onnx-int8")):
        convnlp(
            "eval",
            f"checkpoint={where}",
            "runtime=" + ("torch" if name == "torch" else "onnx"),
            "device=cpu",
            "data.split=test",
            f"hydra.run.dir={tmp_path / ('eval_' + name)}",
            cwd=tmp_path,
        )
        metrics[name] = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())["accuracy"]
    assert metrics["onnx"] == metrics["torch"] and metrics["torch"] > 0.8  # learnt
    assert abs(metrics["int8"] - metrics["torch"]) <= 0.05
