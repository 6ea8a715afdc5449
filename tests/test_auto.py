"""`convnlp train ... auto=true`: the recipe race (convnlp.auto), on tiny data a wrong choice loses.

The data: one to three made-up words, the label read from how the last word is spelt ("...zy" is
yes; "...y", "...z", "...yz" are no), every word new. A word model sees <unk> and cannot do better
than chance; a character model learns it in seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from convnlp.auto import plan
from convnlp.auto.race import Entrant, State, quoted
from convnlp.config import validate
from convnlp.data import hold_out
from convnlp.registry import COMMANDS
from tests.conftest import convnlp, run_dirs, write_csv_splits

CONF = Path(__file__).resolve().parent.parent / "conf"
LETTERS = "abcdefghijklmnoprstuvw"


def suffix_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7))) for _ in range(rng.randint(1, 3))]
        label = rng.choice(["yes", "no"])
        words[-1] += "zy" if label == "yes" else rng.choice(["y", "z", "yz"])
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def suffixes(tmp_path_factory) -> dict[str, Path]:
    return write_csv_splits(tmp_path_factory.mktemp("suffixes"), suffix_rows, (600, 150, 150))


def args(files: dict[str, Path], *more: str, validation: bool = True) -> list[str]:
    return [
        "task=classification",
        "data=csv",
        f"data.train={files['train']}",
        *([f"data.validation={files['validation']}"] if validation else []),
        f"data.test={files['test']}",
        "task.embedding_dim=16",  # every candidate small (words_wide's 300 is held by the command line)
        "encoder.width=32",
        "auto=true",
        "auto.min_minutes=0.02",
        "auto.parallel=2",  # side by side whatever else the machine runs (the tests beside)
        *more,
    ]


# ------------------------------------------------------------------ the plan and the recipes


def test_successive_halving_sizes_and_round_times():
    assert plan.sizes(1) == [1]
    assert plan.sizes(4) == [4, 2, 1]
    assert plan.sizes(5) == [5, 3, 2, 1]
    # 30 min, rounds of 4, 2, 1 on 2 slots: 10 min of wall each; the first round runs two waves
    assert plan.round_seconds(1800, [4, 2, 1], 2, 0) == 300
    assert plan.round_seconds(1800, [4, 2, 1], 2, 20) == 280
    assert plan.round_seconds(1200, [2, 1], 2, 0) == 600  # side by side: one wave
    assert plan.round_seconds(600, [1], 1, 10) == 590
    assert plan.slots(1, 2.0) == 2 and plan.slots(1, 0.3) == 1 and plan.slots(2, 2.0) == 1


def test_a_resumed_race_tries_its_last_rounds_failures_again():
    def entrant(name, scores, out_in, error=None):
        return Entrant(name, "", [], scores=scores, out_in=out_in, error=error)

    state = State("classification", [], 60, 1, 0, 2, [], [], targets=[10.0, 30.0])
    state.entrants = [
        entrant("a", [0.9, None], 2, "killed"),  # failed in round 2, the round the race stopped in
        entrant("b", [0.5], 1),  # out by its score in round 1
        entrant("c", [None], 1, "bad"),  # failed in round 1, a round the race had decided
    ]
    state.retry_failures()
    assert [(e.scores, e.out_in, e.error) for e in state.entrants] == [
        ([0.9], None, None),
        ([0.5], 1, None),
        ([None], 1, "bad"),
    ]
    assert [e.name for e in state.unscored(1)] == ["a"]
    assert quoted(Path("/x/a,b=c'd")) == "'/x/a,b=c\\'d'"


@pytest.mark.parametrize("task", ["classification", "tagging", "generation"])
def test_every_recipe_composes_validates_and_says_what_it_is_for(task):
    names = sorted(p.stem for p in (CONF / "recipes" / task).glob("*.yaml"))
    assert len(names) >= (2 if task == "generation" else 3), names
    entry = COMMANDS["train"]
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        for name in names:
            text = (CONF / "recipes" / task / f"{name}.yaml").read_text()
            lines = text.splitlines()
            assert lines[0] == "# @package _global_" and lines[1].startswith("# ") and len(lines[1]) > 30, name
            cfg = compose("train", overrides=[f"task={task}", f"+recipes/{task}={name}"])
            validate(cfg, entry.info["groups"], entry.config)
            assert "data" not in OmegaConf.create(text), name  # the data is the user's


def test_a_seeded_holdout_becomes_the_validation_split():
    splits = DatasetDict({"train": Dataset.from_dict({"text": [str(i) for i in range(50)], "label": ["a"] * 50})})
    held = hold_out(splits, 0.1, seed=0)
    assert len(held["validation"]) == 5 and len(held["train"]) == 45
    assert held["validation"]["text"] == hold_out(splits, 0.1, seed=0)["validation"]["text"]
    assert not set(held["validation"]["text"]) & set(held["train"]["text"])
    with_validation = DatasetDict({**splits, "validation": splits["train"]})
    assert hold_out(with_validation, 0.1, seed=0) is with_validation


# ------------------------------------------------------------------ errors, one line each, before training


def _user_recipe(tmp_path: Path, text: str) -> str:
    folder = tmp_path / "mine" / "recipes" / "classification"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(text)
    return f"--config-dir={tmp_path / 'mine'}"


@pytest.mark.parametrize(
    "more, recipe, message",
    [
        (["auto.recipes=[words_wide,nope]"], None, "auto.recipes: unknown recipe 'nope' for task=classification"),
        (["auto.recipes=[mine]"], "# @package _global_\n# Mine.\ntask:\n  embeding_dim: 3\n", "unknown key"),
        (["auto.recipes=[mine]"], "# @package _global_\ntask:\n  pooling: mean\n", "opens with a comment line"),
        (["auto.recipes=[mine]"], "# @package _global_\n# Mine.\ndata:\n  encoding: latin-1\n", "sets data.encoding"),
        (
            ["auto.recipes=[mine]"],
            "# @package _global_\n# Mine.\ntrainer:\n  select: macro_f1\n",
            "sets trainer.select",
        ),
        (["auto.recipes=[mine]"], "# @package _global_\n# Mine.\ntask: [unclosed\n", "recipe mine (recipes/"),
        (["auto.recipes=[]"], None, "auto.recipes=[] races nothing"),
        (["trainer.max_minutes=0.05"], None, "too few for 4 candidates"),
        (["experiment=sst2_word"], None, "experiment=... is one recipe already"),
        (["trainer.resume=true"], None, "no unfinished race of this command line"),
    ],
)
def test_bad_races_fail_in_one_line_before_training(suffixes, tmp_path, more, recipe, message):
    flags = [_user_recipe(tmp_path, recipe)] if recipe else []
    result = convnlp("train", *flags, *args(suffixes), *more, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("convnlp: error:") and message in line, line
    assert not list(tmp_path.glob("outputs/train/*/candidates"))


def test_the_command_line_holds_for_every_candidate_and_a_missing_validation_split_is_held_out(suffixes, tmp_path):
    """The command line's encoder holds over words_wide's, which then trains what words_dilated
    trains: raced once. Data without validation: each candidate holds out 10%."""
    more = ["encoder=dilated", "auto.recipes=[words_dilated,words_wide,chars_dilated]", "trainer.max_minutes=0.01"]
    result = convnlp("train", *args(suffixes, *more, validation=False), cwd=tmp_path, check=False)
    log = result.stdout + result.stderr
    assert "recipe words_wide sets encoder, task.embedding_dim; the command line's value holds" in log, log
    assert "recipe words_wide trains the same as words_dilated with the command line's settings: raced once" in log
    assert "holds out the same seeded 10% of the training data" in log
    assert "0.01 minutes are too few for 2 candidates" in result.stderr


# ------------------------------------------------------------------ races


@pytest.mark.slow
def test_the_spelling_recipe_wins_and_the_race_directory_is_a_run(suffixes, tmp_path):
    recipes = "auto.recipes=[words_dilated,chars_dilated,words_wide]"
    # patience given: it holds for every candidate (the race would run without), so the race ends early
    convnlp("train", *args(suffixes, recipes, "trainer.max_minutes=3", "trainer.patience=5"), cwd=tmp_path)
    (race,) = run_dirs(tmp_path)
    state = json.loads((race / "race.json").read_text())
    assert state["winner"] == "chars_dilated" and state["finished"]
    out = {e["name"]: e["out_in"] for e in state["entrants"]}
    assert out["chars_dilated"] is None and sorted([out["words_dilated"], out["words_wide"]]) == [1, 2], out
    by_round = sorted(("words_dilated", "words_wide"), key=out.get, reverse=True)
    chars = next(e for e in state["entrants"] if e["name"] == "chars_dilated")
    assert len(chars["runs"]) == 3  # three rounds, each a run resumed from the one before
    assert "trainer.resume=" in (Path(chars["runs"][1]) / ".hydra" / "overrides.yaml").read_text()

    metrics = json.loads((race / "metrics.json").read_text())
    assert metrics["auto"]["winner"] == "chars_dilated" and metrics["validation"]["accuracy"] > 0.9
    table = (race / "report.md").read_text().splitlines()
    assert [line.split("|")[2].strip() for line in table[2:]] == ["chars_dilated", *by_round]
    assert "won" in table[2] and "round 1" in table[4]
    log = (race / "train.log").read_text()
    assert "auto: chars_dilated won: validation accuracy" in log and "(runner-up," in log

    # eval, predict, export and convnlp.load take the race directory as any run
    evaluated = convnlp("eval", f"checkpoint={race}", "data.split=test", cwd=tmp_path)
    metrics, _ = json.JSONDecoder().raw_decode(evaluated.stdout[evaluated.stdout.index("{") :])
    assert metrics["accuracy"] > 0.9
    predicted = convnlp("predict", f"checkpoint={race}", input="mnopqzy\nabcdey\n", cwd=tmp_path)
    assert [json.loads(line)["label"] for line in predicted.stdout.splitlines()] == ["yes", "no"]
    convnlp("export", f"checkpoint={race}", cwd=tmp_path)
    assert (race / "onnx" / "model.onnx").is_file()
    import convnlp as api

    assert [p["label"] for p in api.load(race).predict(["uvwzy", "uvwz"])] == ["yes", "no"]
    report = convnlp("report", str(race), cwd=tmp_path)
    assert "candidates/chars_dilated/round3" in report.stdout
    folder = convnlp("report", str(tmp_path / "outputs" / "train"), cwd=tmp_path)  # the race is one run there
    assert len([line for line in folder.stdout.splitlines() if line.startswith("| ")]) == 2, folder.stdout


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.mark.slow
def test_a_killed_race_goes_on_where_it_was(suffixes, tmp_path):
    more = [
        "auto.recipes=[words_dilated,chars_dilated]",
        "trainer.max_minutes=0.6",
        "trainer.patience=0",  # every candidate trains its whole round
        "trainer.checkpoint_minutes=0.02",
    ]
    command = [sys.executable, "-m", "convnlp", "train", *args(suffixes, *more)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    race = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def both_saved() -> bool:
            return len(list(tmp_path.glob("outputs/train/*/candidates/*/round1/last/training_state.pt"))) == 2

        _wait_for(both_saved, 120, "both candidates' first last/")
    finally:
        race.send_signal(signal.SIGKILL)
        race.wait()
    (killed,) = run_dirs(tmp_path)
    logs = [killed / "candidates" / name / "round1" / "train.log" for name in ("words_dilated", "chars_dilated")]
    # the candidates die with the race (each keeps its last/)
    _wait_for(lambda: all("terminated by SIGTERM" in p.read_text() for p in logs), 60, "the candidates to stop")
    assert not json.loads((killed / "race.json").read_text())["finished"]

    convnlp("train", *args(suffixes, *more), "trainer.resume=true", cwd=tmp_path)
    resumed = next(d for d in run_dirs(tmp_path) if d != killed)
    state = json.loads((resumed / "race.json").read_text())
    assert state["winner"] == "chars_dilated" and state["finished"]
    chars = next(e for e in state["entrants"] if e["name"] == "chars_dilated")
    assert chars["runs"][0] == str(killed / "candidates" / "chars_dilated" / "round1")  # the killed round, resumed
    assert "resumed from" in (Path(chars["runs"][1]) / "train.log").read_text()
    assert (killed / "resumed_by").read_text().strip() == str(resumed.resolve())
    assert (resumed / "best" / "model.safetensors").is_file()
