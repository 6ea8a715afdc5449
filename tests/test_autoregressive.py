"""The autoregressive decoders (decoder=convs2s, decoder=lstm) and their search: causality,
incremental decoding equal to full recomputation, beam 1 equal to greedy, beam search on a tiny
trained model, n-best, ensembles, predict, the API, resume, and the errors of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import convnlp
from convnlp.data import tokenizer as tok
from convnlp.decoders import search
from convnlp.ensemble import Ensemble
from convnlp.errors import UserError
from convnlp.model import build_model
from convnlp.tasks import generation as gen
from tests import test_generation as tg
from tests.conftest import TINY_AR, run_dirs, spelling_args
from tests.conftest import convnlp as run_convnlp
from tests.test_cli import _kill_at_step, _uninterrupted

COMMON = {
    "label_smoothing": 0.0,
    "max_length": 12,
    "source_length": 12,
    "length_ratio": 2,
    "length_extra": 4,
    "too_long": "error",
}
DECODERS = {
    "convs2s": {
        "name": "convs2s",
        "width": 32,
        "embedding_dim": 16,
        "layers": 3,
        "kernel": 3,
        "dilations": [1, 2, 1],
        "norm": "layer",
        "dropout": 0.0,
        **COMMON,
    },
    "lstm": {"name": "lstm", "width": 32, "embedding_dim": 16, "layers": 2, "dropout": 0.0, **COMMON},
}


def task_of(decoder: str, beam: int = 1, **settings) -> dict:
    return {
        **tg.TASK,
        "loss": "auto",
        "beam": beam,
        "length_penalty": 1.0,
        "decoder": {**DECODERS[decoder], **settings},
    }


def untrained(decoder: str, seed: int = 0):
    torch.manual_seed(seed)
    task = task_of(decoder)
    return build_model(task, tg.ENCODER, 20, 15).eval(), task


def a_batch():
    ids = torch.randint(4, 20, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    return {"ids": ids, "mask": mask}


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_a_future_target_symbol_never_changes_earlier_scores(decoder):
    model, _ = untrained(decoder)
    batch = a_batch()
    target = torch.randint(3, 15, (3, 9))
    changed = target.clone()
    changed[:, 5] = (changed[:, 5] + 1 - 3) % 12 + 3  # another symbol at position 5
    a, b = model({**batch, "target": target}), model({**batch, "target": changed})
    # the score of position t reads the symbols before t: positions 0..5 see the same prefix
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_incremental_decoding_equals_full_recomputation(decoder):
    model, _ = untrained(decoder)
    batch = a_batch()
    target = torch.randint(3, 15, (3, 9))
    full = model({**batch, "target": target})
    state = model.head.start(model.encode(batch), batch["mask"])
    previous, steps = torch.full((3,), gen.END), []
    for t in range(target.shape[1]):
        steps.append(model.head.step(state, previous, t))
        previous = target[:, t]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_the_convolutional_decoder_caches_a_window_not_the_prefix():
    model, _ = untrained("convs2s")
    batch = a_batch()
    state = model.head.start(model.encode(batch), batch["mask"])
    for t in range(6):
        model.head.step(state, torch.full((3,), 5), t)
    # (k - 1) * d + 1 inputs per layer, whatever the length decoded so far
    assert [w.shape[-1] for w in state["windows"]] == [3, 5, 3]
    assert model.head.receptive_field == 1 + 2 * (1 + 2 + 1)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_beam_search_of_width_1_is_greedy_search(decoder):
    for seed in range(3):
        model, _ = untrained(decoder, seed)
        batch = a_batch()
        limits = torch.tensor([12, 6, 9])
        greedy = search.greedy(search.Members([model], batch), limits)
        beam = search.beam_search(search.Members([model], batch), limits, 1, 0.0)
        assert [h[0].tokens for h in beam] == greedy
        assert all(len(g) < n for g, n in zip(greedy, limits.tolist()))  # the end symbol counts


def test_beam_search_keeps_the_best_outputs_in_order_and_within_the_limits():
    model, _ = untrained("convs2s")
    batch = a_batch()
    limits = torch.tensor([8, 3, 5])
    found = search.beam_search(search.Members([model], batch), limits, 4, 1.0)
    for hypotheses, limit in zip(found, limits.tolist()):
        assert len(hypotheses) == 4 and len({tuple(h.tokens) for h in hypotheses}) == 4
        assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
        assert all(len(h.tokens) < limit for h in hypotheses)
        assert all(h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1)) for h in hypotheses)
        assert not any({0, 1, 2} & set(h.tokens) for h in hypotheses)  # no special symbol inside


def overfit(decoder: str, beam: int = 1):
    task = task_of(decoder, beam)
    model, tokenizer, labels, (value, count) = tg.overfit(task)
    return model, tokenizer, labels, task, value


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_a_tiny_trained_model_finds_the_references_greedy_and_by_beam(decoder):
    model, tokenizer, labels, task, value = overfit(decoder)
    assert value.item() < 0.01
    for beam in (1, 3):
        result = gen.evaluate(
            model, tokenizer, labels, tg.split_of(tg.PAIRS), {**task, "beam": beam}, torch.device("cpu"), 1000
        )
        assert result["wer"] == 0.0 and result["per"] == 0.0, (beam, result)
    records = gen.predict_records(model, tokenizer, labels, ["cat", "dog"], torch.device("cpu"), {**task, "nbest": 3})
    assert [r["output"] for r in records] == ["K AE1 T", "D AO1 G"]
    for record in records:
        assert record["nbest"][0]["output"] == record["output"] and len(record["nbest"]) == 3
        scores = [n["score"] for n in record["nbest"]]
        assert scores == sorted(scores, reverse=True) and len({n["output"] for n in record["nbest"]}) == 3


def test_label_smoothing_raises_the_loss_of_a_confident_model():
    model, tokenizer, labels, task, _ = overfit("convs2s")
    split = tg.split_of(tg.PAIRS)
    batch = gen.make_batch(gen.encode(split, tokenizer, labels, "train", task), list(range(len(tg.PAIRS))))
    plain, _ = gen.loss(model(batch), batch, task)
    smoothed, _ = gen.loss(model(batch), batch, {**task, "decoder": {**task["decoder"], "label_smoothing": 0.1}})
    assert plain.item() < 0.01 < smoothed.item()


def test_an_ensemble_averages_the_members_next_symbol_log_probabilities():
    (a, task), (b, _) = untrained("convs2s", 0), untrained("lstm", 1)
    batch = a_batch()
    both = search.Members([a, b], batch)
    tokens = torch.full((3,), gen.END)
    expected = torch.stack(
        [m.head.step(m.head.start(m.encode(batch), batch["mask"]), tokens, 0).log_softmax(-1) for m in (a, b)]
    ).mean(0)
    got = both.log_probs(tokens, 0)
    torch.testing.assert_close(got[:, 3:], expected[:, 3:])
    assert torch.isinf(got[:, [0, 2]]).all()  # <pad> and <blank> are never produced
    ensemble = Ensemble([a, b], [task, task_of("lstm")])
    outputs = gen.generate(ensemble, *vocabulary(), ["cat", "dog", "see"], torch.device("cpu"), task)
    assert len(outputs) == 3 and all(isinstance(o, list) for o in outputs)


def vocabulary():
    split = tg.split_of(tg.PAIRS)
    labels = gen.label_vocabulary(split, task_of("convs2s"))
    tokenizer = tok.build("char", split["source"])
    return tokenizer, (labels + [f"x{i}" for i in range(15)])[:15]


def test_an_ensemble_of_deconv_and_an_autoregressive_decoder_is_refused():
    a, task = untrained("convs2s")
    deconv_task = {**tg.TASK, "loss": "ctc"}
    b = build_model(deconv_task, tg.ENCODER, 20, 15).eval()
    with pytest.raises(
        UserError, match=r"^an ensemble of decoders convs2s, deconv: .*; ensemble checkpoints of one kind$"
    ):
        gen.generate(Ensemble([a, b], [task, deconv_task]), *vocabulary(), ["cat"], torch.device("cpu"), task)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_predict_records_keep_one_record_per_line(decoder):
    model, task = untrained(decoder)
    tokenizer, labels = vocabulary()
    records = gen.predict_records(model, tokenizer, labels, ["cat", "", "x" * 13, "dog"], torch.device("cpu"), task)
    assert [r["source"] for r in records] == ["cat", "", "x" * 13, "dog"]
    assert records[1] == {"source": "", "output": None, "tokens": None, "error": "empty text"}
    assert records[2]["output"] is None
    assert records[2]["error"] == "source of 13 symbols is longer than decoder.source_length=12"
    assert isinstance(records[3]["output"], str) and records[3]["output"] == " ".join(records[3]["tokens"])


def test_ctc_with_an_autoregressive_decoder_is_one_line():
    with pytest.raises(
        UserError, match=r"^task.loss=ctc is for decoder=deconv; decoder=lstm trains with cross-entropy"
    ):
        build_model({**task_of("lstm"), "loss": "ctc"}, tg.ENCODER, 20, 15)


def test_n_best_of_a_one_pass_decoder_is_one_line():
    task = {**tg.TASK, "loss": "ctc"}
    model = build_model(task, tg.ENCODER, 20, 15).eval()
    with pytest.raises(UserError, match="^nbest: n-best outputs come from beam search"):
        gen.generate(model, *vocabulary(), ["cat"], torch.device("cpu"), task, nbest=2)


# ------------------------------------------------------------------- through the command line


LEARNS = ["trainer.max_steps=400", "trainer.eval_every=50", "trainer.patience=0"]  # 98% / 92% after 300 steps


@pytest.fixture(scope="module")
def ar_runs(tmp_path_factory, spelling_files):
    """A tiny convs2s and lstm trained on the spelling data through the command line."""
    runs = {}
    for decoder in DECODERS:
        cwd = tmp_path_factory.mktemp(decoder)
        run_convnlp("train", *spelling_args(spelling_files), *TINY_AR, f"decoder={decoder}", *LEARNS, cwd=cwd)
        (runs[decoder],) = run_dirs(cwd)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_train_eval_predict_and_the_api(ar_runs, decoder, tmp_path):
    run = ar_runs[decoder]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["wer"] < 0.1, metrics["test"]
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["decoder"]["name"] == decoder and config["task"]["beam"] == 5
    result = run_convnlp("eval", f"checkpoint={run / 'best'}", "data.split=test", "beam=1", cwd=tmp_path)
    greedy = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert greedy["beam"] == 1 and greedy["wer"] < 0.1
    lines = "abba\n\nabcdefgabc\ncafe\n"
    command = run_convnlp("predict", f"checkpoint={run / 'best'}", "nbest=2", cwd=tmp_path, input=lines)
    rows = [json.loads(line) for line in command.stdout.splitlines()]
    assert len(rows) == 4 and rows[0]["output"] == "A B A" and rows[3]["output"] == "C A F E"
    assert rows[1]["error"] == "empty text" and "longer than decoder.source_length=8" in rows[2]["error"]
    assert len(rows[0]["nbest"]) == 2 and rows[0]["nbest"][0]["output"] == "A B A"
    api = convnlp.load(run).predict(lines.splitlines(), nbest=2)
    assert json.loads(json.dumps(api)) == rows


@pytest.mark.slow
def test_an_ensemble_of_both_decoders_and_a_label_mismatch(ar_runs, tmp_path, spelling_files):
    members = f"checkpoint=[{ar_runs['convs2s'] / 'best'},{ar_runs['lstm'] / 'best'}]"
    result = run_convnlp("eval", members, "data.split=test", cwd=tmp_path)
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert printed["wer"] < 0.15
    rows = run_convnlp("predict", members, cwd=tmp_path, input="abba\ncafe\n").stdout.splitlines()
    assert [json.loads(r)["output"] for r in rows] == ["A B A", "C A F E"]
    other = tmp_path / "other.tsv"  # other targets: another target vocabulary
    pairs = [line.rstrip("\n").split("\t") for line in open(spelling_files["train"])]
    other.write_text("".join(f"{source}\t{target.lower()}\n" for source, target in pairs))
    run_convnlp(
        "train",
        "data=parallel",
        f"data.train={other}",
        *TINY_AR,
        "decoder=convs2s",
        "trainer.max_steps=2",
        cwd=tmp_path,
    )
    (mismatch,) = run_dirs(tmp_path)
    refused = run_convnlp(
        "eval", f"checkpoint=[{ar_runs['convs2s'] / 'best'},{mismatch / 'best'}]", cwd=tmp_path, check=False
    )
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"convnlp: error: {mismatch / 'best'}: its labels differ from those of {ar_runs['convs2s'] / 'best'}; "
        "an ensemble's checkpoints must share the task, the tokenizer, the labels and the word features"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (["task.beam=0"], "task.beam=0 must be at least 1 (1 is greedy search)"),
        (
            ["decoder=convs2s", "task.loss=ctc"],
            "task.loss=ctc is for decoder=deconv; decoder=convs2s trains with cross-entropy (task.loss=auto or ce)",
        ),
        (
            ["decoder=convs2s", "decoder.dilations=[1,2]"],
            "decoder.dilations has 2 entries for decoder.layers=4; give one per layer or none",
        ),
    ],
)
def test_bad_settings_are_one_line(tmp_path, spelling_files, args, message):
    result = run_convnlp("train", *spelling_args(spelling_files), "task=generation", *args, cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr == f"convnlp: error: {message}\n"


@pytest.mark.slow
def test_bad_predict_settings_are_one_line(ar_runs, tmp_path):
    run = ar_runs["convs2s"]
    for args, message in (
        (["beam=0"], "beam=0 must be a whole number, at least 1 (or null: the checkpoint's task.beam)"),
        (["nbest=-1"], "nbest=-1 must be a whole number, 0 (no n-best list) or more"),
    ):
        result = run_convnlp("predict", f"checkpoint={run / 'best'}", *args, cwd=tmp_path, input="abba\n", check=False)
        assert result.returncode == 2 and result.stderr == f"convnlp: error: {message}\n"


@pytest.mark.slow
def test_a_killed_convs2s_run_resumes_to_identical_weights(tmp_path, spelling_files):
    args = [
        *spelling_args(spelling_files),
        *TINY_AR,
        "decoder=convs2s",
        "decoder.dropout=0.1",
        "trainer.max_steps=120",
        "trainer.max_epochs=100",
        "trainer.eval_every=30",
        "trainer.checkpoint_every=20",
        "trainer.patience=0",
    ]
    full, killed_cwd = _uninterrupted(tmp_path, args)
    killed, last, state = _kill_at_step(killed_cwd, args, 40)
    assert not state["finished"] and 40 <= state["step"] < 120, state
    run_convnlp("train", *args, "trainer.resume=true", cwd=killed_cwd)
    resumed = [d for d in run_dirs(killed_cwd) if d != killed][0]
    a, b = load_file(full / "last" / "model.safetensors"), load_file(resumed / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"


@pytest.mark.slow
def test_export_is_refused_in_one_line_and_inspect_shows_the_decoder(ar_runs, tmp_path):
    run = ar_runs["convs2s"]
    result = run_convnlp("export", f"checkpoint={run}", f"output={tmp_path / 'onnx'}", cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr == (
        "convnlp: error: export: decoder=convs2s decodes step by step with a search over a growing prefix, which "
        "one ONNX graph does not hold; serve it with runtime=torch (decoder=deconv exports)\n"
    )
    assert not (tmp_path / "onnx").exists()
    shown = run_convnlp("inspect", "task=generation", "decoder=convs2s", "decoder.dilations=[1,2,4,8]", cwd=tmp_path)
    assert "receptive field over the prefix: 31 symbols" in shown.stdout
    assert "FLOPs per output symbol, for a source of 10 symbols:" in shown.stdout
    report = json.loads(next(tmp_path.glob("outputs/inspect/*/inspect.json")).read_text())["decoder"]
    assert report["prefix_receptive_field"] == 31 and [r["prefix_reach"] for r in report["layers"]] == [3, 7, 15, 31]
    width = 256  # the default: 4 layers of a kernel-3 GLU convolution, 2 x width outputs
    assert (
        dict((r["part"], r["flops"]) for r in report["flops"])["4 causal GLU convolutions"]
        == 4 * 2 * 3 * width * 2 * width
    )
    lstm = run_convnlp("inspect", "task=generation", "decoder=lstm", cwd=tmp_path)
    assert "receptive field over the prefix: unbounded symbols" in lstm.stdout


def test_an_autoregressive_teacher_relabels_for_distillation():
    teacher, tokenizer, labels, task, _ = overfit("lstm")
    split = tg.split_of([("cat", "K AH0 T"), ("cat", "K AE1 T"), ("dog", "D AO1 G G"), ("x" * 13, "AA1")])
    columns, counts = gen.distill(split, teacher, tokenizer, labels, task, tg.TASK, torch.device("cpu"), 1000)
    # its outputs for what it learned; a source longer than decoder.source_length=12 keeps its reference
    assert columns == {"source": ["cat", "dog", "x" * 13], "target": ["K AE1 T", "D AO1 G", "AA1"]}
    assert counts == {"sources": 3, "changed": 1, "kept": 1}


@pytest.mark.slow
def test_the_generation_bench_script_times_every_decoder_and_writes_json(ar_runs, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_generation.py"
    out = tmp_path / "bench.json"
    runs = [str(ar_runs[d] / "best") for d in ("convs2s", "lstm")]
    args = ["--threads", "1", "--beams", "1", "3", "--repetitions", "2", "--sources", "20", "--seconds", "0.1"]
    result = subprocess.run(
        [sys.executable, str(script), *runs, *args, "--latency-sources", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["baseline"] == "lstm-32" and report["sources"] == 20
    rows = {r["subject"]: r for r in report["summary"]}
    assert set(rows) == {"convs2s-32/beam1", "convs2s-32/beam3", "lstm-32/beam1", "lstm-32/beam3"}
    assert rows["lstm-32/beam3"]["sources_per_s_ratio"] == 1.0 and rows["lstm-32/beam1"]["sources_per_s_ratio"] == 1.0
    assert rows["convs2s-32/beam3"]["sources_per_s"] > 0 and rows["convs2s-32/beam1"]["target_symbols_per_s_ratio"] > 0
    assert "target_symbols_per_s" not in rows["convs2s-32/beam3"]
    assert "| 1 | convs2s-32/beam1 |" in result.stdout
