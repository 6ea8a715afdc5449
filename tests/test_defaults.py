"""Issue 20: what a user's own data needs: special tokens kept whole, the metric that selects
the best checkpoint, budgets that say what they do, and the small fixes (version, shell
completion, threads for eval and predict, a missing data directory named, BLEU of characters)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import convnlp
from convnlp.data import tokenizer as tok
from convnlp.resume import TrainState
from convnlp.train.budget import Limits, given_budget, selection_score
from tests.conftest import TINY, TINY_CLASSIFIER, TINY_GENERATOR, conll_args, review_args, run_dirs
from tests.conftest import convnlp as run_convnlp

INFLECTION = [
    ("V;PST walk", "walked"),
    ("N;PL cat", "cats"),
    ("V;PST stop", "stopped"),
    ("N;PL box", "boxes"),
    ("V;PST bake", "baked"),
    ("N;PL city", "cities"),
    ("V;PST try", "tried"),
    ("N;PL dog", "dogs"),
]


# ------------------------------------------------------------------------------ special tokens


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_special_tokens_and_pattern_matches_are_one_symbol_after_a_save(tmp_path, kind):
    texts = [f"{source} <en>" for source, _ in INFLECTION] * 3
    built = tok.build(
        kind,
        texts,
        min_frequency=1,
        max_vocab=200 if kind == "bpe" else 0,
        specials=["V;PST", "N;PL"],
        special_pattern=r"<[^<>\s]+>",
    )
    tok.save(built, tmp_path / "tokenizer.json")
    loaded = tok.load(tmp_path / "tokenizer.json")
    for tokenizer in (built, loaded):
        tokens = tokenizer.encode("V;PST walk <en> N;PL", add_special_tokens=False).tokens
        assert {"V;PST", "<en>", "N;PL"} <= set(tokens), tokens
        assert "<fr>" not in tokenizer.get_vocab()  # only what the training texts hold, or was given
    assert tok.encode_texts(built, ["V;PST walk"]) == tok.encode_texts(loaded, ["V;PST walk"])


def test_letters_of_special_tokens_are_not_counted_as_characters():
    built = tok.build("char", ["V;PST ab"], specials=["V;PST"])
    assert "V" not in built.get_vocab() and ";" not in built.get_vocab() and "V;PST" in built.get_vocab()
    ids, first, last = tok.encode(built, [["V;PST", "ab"]])
    assert len(ids[0]) == 4 and first == [[0, 2]] and last == [[0, 3]]  # V;PST, space, a, b


def test_a_special_token_rarer_than_min_frequency_is_kept():
    built = tok.build("word", ["the V;PST cat", "the dog"], min_frequency=2, specials=["V;PST"])
    assert "V;PST" in built.get_vocab() and "cat" not in built.get_vocab()


@pytest.fixture(scope="module")
def inflection_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inflection")
    for split in ("train", "validation"):
        (root / f"{split}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in INFLECTION * 4))
    return root


def test_generation_reads_features_whole_from_training_to_predict(tmp_path, inflection_files):
    args = [
        "data=parallel",
        f"data.train={inflection_files / 'train.tsv'}",
        f"data.validation={inflection_files / 'validation.tsv'}",
        *TINY_GENERATOR,
        "decoder.source_length=16",
        "decoder.max_length=16",
        "task.target_tokens=char",
        'tokenizer.special_tokens=["V;PST"]',
        r"tokenizer.special_pattern='^N;\w+'",
        "trainer.max_steps=2",
    ]
    run_convnlp("train", *args, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    saved = json.loads((run / "best" / "tokenizer.json").read_text())
    assert {"V;PST", "N;PL"} <= {t["content"] for t in saved["added_tokens"]}
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["tokenizer"]["special_tokens"] == ["V;PST"]
    result = run_convnlp("predict", f"checkpoint={run / 'best'}", input="V;PST walk\nN;PL dog\n", cwd=tmp_path)
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == ["V;PST walk", "N;PL dog"]


def test_a_bad_special_pattern_is_one_line(tmp_path):
    result = run_convnlp("train", "tokenizer.special_pattern='(unclosed'", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "convnlp: error: tokenizer.special_pattern=(unclosed is not a valid regular expression (Python's re)"
    )


# ------------------------------------------------------------------------------ selection metric


def test_bio_tags_select_by_entity_f1_and_say_so(tmp_path, conll_files):
    run_convnlp("train", *conll_args(conll_files), *TINY, "trainer.max_steps=6", "trainer.eval_every=3", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["selected_by"] == "f1" and "f1" in metrics["validation"]
    log = (run / "train.log").read_text()
    assert "best/ by validation f1" in log and "step 3 epoch" in log and ": validation f1 " in log


def test_classification_can_select_by_macro_f1(tmp_path, review_files):
    run_convnlp(
        "train",
        *review_args(review_files),
        *TINY_CLASSIFIER,
        "tokenizer=word",
        "trainer.max_steps=4",
        "trainer.eval_every=2",
        "trainer.select=macro_f1",
        cwd=tmp_path,
    )
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    best = json.loads((run / "best" / "metrics.json").read_text())
    assert metrics["selected_by"] == "macro_f1" and best["selected_by"] == "macro_f1"
    assert "validation macro_f1 " in (run / "train.log").read_text()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["trainer.select=bleu"],
            "trainer.select='bleu' is not a tagging metric; choose one of: auto, accuracy, f1, precision, recall",
        ),
        (
            ["task=classification", "trainer.select=f1"],
            "trainer.select='f1' is not a classification metric; choose one of: auto, accuracy, macro_f1",
        ),
    ],
)
def test_a_metric_the_task_does_not_report_is_refused_before_work_starts(tmp_path, overrides, message):
    result = run_convnlp("train", *overrides, cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.strip() == f"convnlp: error: {message}"


def test_entity_f1_needs_entity_tags():
    from convnlp.errors import UserError
    from convnlp.train.budget import selection_metric

    assert selection_metric("auto", "tagging", ["B-PER", "I-PER", "O"]) == "f1"
    assert selection_metric("auto", "tagging", ["NOUN", "VERB"]) == "accuracy"
    assert selection_metric("auto", "classification", ["B-PER", "O"]) == "accuracy"
    with pytest.raises(UserError, match="trainer.select=f1 needs BIO entity tags .* include 'NOUN'"):
        selection_metric("f1", "tagging", ["NOUN", "O"])


def test_error_rates_select_downwards():
    assert selection_score({"wer": 0.2}, "wer") > selection_score({"wer": 0.3}, "wer")
    assert selection_score({"f1": 0.9}, "f1") > selection_score({"f1": 0.8}, "f1")


# ------------------------------------------------------------------------------ budgets


def trainer(**values):
    base = dict(max_epochs=None, max_steps=0, max_minutes=0.0, min_steps=500, patience=5)
    return OmegaConf.create({**base, **values})


def test_the_default_budget_is_twenty_epochs_and_at_least_min_steps():
    limits = Limits.of(trainer(), steps_per_epoch=100, metric="accuracy")
    assert (limits.epochs, limits.planned) == (20, 2000)
    assert limits.reached(TrainState(step=2000, epoch=20)) == "trainer.max_epochs=20 reached"
    small = Limits.of(trainer(), steps_per_epoch=3, metric="accuracy")  # 20 epochs are 60 steps
    assert small.planned == 500 and "at least 500 steps (min_steps)" in small.describe()
    assert small.reached(TrainState(step=60, epoch=20)) is None
    assert small.reached(TrainState(step=100, epoch=33, bad_evals=9)) is None  # patience waits too
    assert small.reached(TrainState(step=500, epoch=166)).startswith("trainer.min_steps=500 reached (166 epochs")


def test_a_step_or_time_budget_alone_has_no_epoch_limit():
    limits = Limits.of(trainer(max_steps=300), steps_per_epoch=3, metric="accuracy")
    assert (limits.epochs, limits.planned) == (0, 300) and limits.describe() == "300 steps (max_steps)"
    assert limits.reached(TrainState(step=299, epoch=99)) is None
    assert limits.reached(TrainState(step=300, epoch=100)) == "trainer.max_steps=300 reached"
    timed = Limits.of(trainer(max_minutes=5.0), steps_per_epoch=3, metric="accuracy")
    assert (timed.epochs, timed.planned, timed.describe()) == (0, 0, "5 min (max_minutes)")
    both = Limits.of(trainer(max_steps=100, max_epochs=2, min_steps=0), steps_per_epoch=10, metric="f1")
    assert both.describe() == "100 steps (max_steps) or 2 epochs (max_epochs), whichever comes first"
    assert both.reached(TrainState(step=20, epoch=2)) == "trainer.max_epochs=2 reached"
    assert (
        both.reached(TrainState(step=50, epoch=1, bad_evals=5))
        == "trainer.patience=5: no better validation f1 in 5 evaluations"
    )


def test_the_command_lines_budget_lifts_the_config_files_epoch_limit_and_min_steps():
    cfg = OmegaConf.create({"trainer": dict(trainer(max_epochs=3, max_steps=100))})
    lifted = given_budget(cfg, {"trainer.max_steps", "data"})
    assert lifted.trainer.max_epochs is None and lifted.trainer.min_steps == 0
    kept = given_budget(cfg, {"trainer.max_steps", "trainer.max_epochs"})
    assert kept.trainer.max_epochs == 3 and kept.trainer.min_steps == 0
    asked = given_budget(cfg, {"trainer.max_steps", "trainer.min_steps"})
    assert asked.trainer.max_epochs is None and asked.trainer.min_steps == 500
    assert given_budget(cfg, {"data"}) is cfg


def test_an_explicit_step_budget_is_not_cut_by_an_experiments_epochs_and_logs_its_progress(tmp_path, conll_files):
    experiments = tmp_path / "my_conf" / "experiment"
    experiments.mkdir(parents=True)
    (experiments / "one_epoch.yaml").write_text("# @package _global_\ntrainer:\n  max_epochs: 1\n")
    args = [
        "--config-dir",
        str(tmp_path / "my_conf"),
        "experiment=one_epoch",
        *conll_args(conll_files),
        *TINY,
        "trainer.log_minutes=0.00001",
    ]
    run_convnlp("train", *args, "trainer.max_steps=12", "trainer.eval_every=6", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["stop_reason"] == "trainer.max_steps=12 reached"
    assert metrics["epochs"] > 1  # the experiment's max_epochs=1 did not cut it
    log = (run / "train.log").read_text()
    assert "no epoch limit (the config's max_epochs=1 is not applied" in log
    assert "up to 12 steps (max_steps) on cpu" in log
    assert "step 5/12, epoch " in log and "symbols/s, about " in log and " min left" in log
    assert "stopped: trainer.max_steps=12 reached after 12 steps" in log


# ------------------------------------------------------------------------------ small fixes


def test_version():
    result = run_convnlp("--version", cwd=Path.cwd())
    assert result.stdout.startswith(f"convnlp {convnlp.__version__} (torch ")


def test_shell_completion_completes_commands_and_their_overrides(tmp_path):
    script = run_convnlp("-sc", "install=bash", cwd=tmp_path).stdout
    assert script.rstrip().endswith("complete -o nospace -o default -F _convnlp_completion convnlp")
    assert run_convnlp("train", "-sc", "install=bash", cwd=tmp_path).stdout == script
    bin_dir = tmp_path / "bin"  # the function calls `convnlp`: this interpreter's
    bin_dir.mkdir()
    (bin_dir / "convnlp").write_text(f'#!/bin/sh\nexec {sys.executable} -m convnlp "$@"\n')
    (bin_dir / "convnlp").chmod(0o755)
    probe = (
        'eval "$(convnlp -sc install=bash)"\n'
        'COMP_LINE="convnlp tr" COMP_CWORD=1 _convnlp_completion; echo "${COMPREPLY[@]}"\n'
        'COMP_LINE="convnlp train data=ud" COMP_CWORD=2 _convnlp_completion; echo "${COMPREPLY[@]}"\n'
        'COMP_LINE="convnlp train trainer.max_st" COMP_CWORD=2 _convnlp_completion; echo "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert result.stdout.splitlines() == ["train", "data=ud_ewt", "trainer.max_steps="], result.stderr
    wrong = run_convnlp("-sc", "install=fish", cwd=tmp_path, check=False)
    assert wrong.returncode == 2 and wrong.stderr.startswith("convnlp: error: -sc install=fish: give install=bash")


def test_eval_and_predict_take_a_thread_count(tmp_path, conll_files):
    run_convnlp("train", *conll_args(conll_files), *TINY, "trainer.max_steps=2", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    evaluated = run_convnlp("eval", f"checkpoint={run / 'best'}", "threads=1", cwd=tmp_path)
    assert json.loads(evaluated.stdout[: evaluated.stdout.rindex("}") + 1])["threads"] == 1
    predicted = run_convnlp(
        "predict", f"checkpoint={run / 'best'}", "threads=1", input="Anna lives in Rome .\n", cwd=tmp_path
    )
    assert len(json.loads(predicted.stdout)["tags"]) == 5
    wrong = run_convnlp("predict", f"checkpoint={run / 'best'}", "threads=-1", input="x\n", cwd=tmp_path, check=False)
    assert wrong.returncode == 2 and "threads=-1 must be a whole number" in wrong.stderr


def test_a_corpus_that_cannot_be_downloaded_names_the_data_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CONVNLP_DATA_DIR"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convnlp",
            "train",
            "data=ud_ewt",
            "trainer.max_steps=1",
            "data.url='http://127.0.0.1:9/en_ewt-ud-{split}.conllu'",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "CONVNLP_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith("without a network, put ud_en_ewt/train.conllu in $CONVNLP_DATA_DIR (or data.data_dir)")


def test_bleu_of_character_targets_counts_characters():
    from convnlp.tasks.generation import metrics

    references = [[list("walked")], [list("stopped")]]
    near = metrics([list("walked"), list("stoped")], references, {"target_tokens": "char"})
    assert 50 < near["bleu"] < 100 and near["accuracy"] == 0.5
    assert metrics([list("walked"), list("stopped")], references, {"target_tokens": "char"})["bleu"] == pytest.approx(
        100.0
    )
    words = [["HH", "AH0", "L", "OW1"]]  # word targets: BLEU over sacrebleu's usual 13a tokens
    assert metrics(words, [words], {"target_tokens": "word"})["bleu"] == pytest.approx(100.0)
    assert metrics([["hello"]], [[list("hello")]], {"target_tokens": "word"})["bleu"] == 0.0


def test_report_sorts_by_the_metric_the_runs_selected_by(tmp_path):
    from convnlp.report import selection_key

    runs = []
    for name, chosen in (("a", "f1"), ("b", "f1"), ("c", None)):
        (tmp_path / name).mkdir()
        if chosen:
            (tmp_path / name / "metrics.json").write_text(json.dumps({"selected_by": chosen}))
        runs.append(tmp_path / name)
    assert selection_key(runs) == "validation.f1"  # c has not finished
    (tmp_path / "c" / "metrics.json").write_text(json.dumps({}))  # before trainer.select: accuracy
    assert selection_key(runs) == "validation.accuracy"


def test_a_resumed_run_keeps_its_selection_metric(tmp_path, conll_files):
    args = [*conll_args(conll_files), *TINY, "trainer.max_steps=2"]
    run_convnlp("train", *args, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    result = run_convnlp("train", *args, "trainer.select=accuracy", f"trainer.resume={run}", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        "convnlp: error: trainer.select: the resumed run selected by 'f1', this one by "
        "'accuracy'; give trainer.select=f1\n"
    )
