"""The Python API (convnlp.load(...).predict([...])) on real checkpoints: the records `convnlp
predict` writes, for every task, one checkpoint or an ensemble."""

from __future__ import annotations

import json

import pytest

import convnlp
from convnlp.errors import UserError
from tests.conftest import TINY, TINY_CLASSIFIER, TINY_GENERATOR, conll_args, review_args, spelling_args, train_tiny
from tests.conftest import convnlp as run_convnlp

pytestmark = pytest.mark.slow

TEXTS = {
    "tagging": ["Alice met Bob in Paris .", "", "Grace left in New Oslo ."],
    "classification": ["the film was great", "", "a dull and boring story"],
    "generation": ["abba", "", "gfedcba"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, conll_files, review_files, spelling_files):
    root = tmp_path_factory.mktemp("api")
    return {
        "tagging": train_tiny(root, "tagging", [*conll_args(conll_files), *TINY]),
        "classification": train_tiny(root, "classification", [*review_args(review_files), *TINY_CLASSIFIER]),
        "generation": train_tiny(root, "generation", [*spelling_args(spelling_files), *TINY_GENERATOR]),
    }


@pytest.mark.parametrize("task", list(TEXTS))
def test_the_api_predicts_what_the_command_line_writes(runs, task, tmp_path):
    model = convnlp.load(runs[task])  # a run directory: its best/
    assert model.task_name == task and repr(model).startswith(f"convnlp.Predictor(task={task}")
    records = model.predict(TEXTS[task])
    command = run_convnlp(
        "predict", f"checkpoint={runs[task] / 'best'}", "device=cpu", cwd=tmp_path, input="\n".join(TEXTS[task]) + "\n"
    )
    expected = [json.loads(line) for line in command.stdout.splitlines()]
    assert json.loads(json.dumps(records)) == expected
    assert model.predict(TEXTS[task][0]) == records[0]  # one string: its record
    assert model.predict(TEXTS[task], batch_size=1) == records


def test_an_ensemble_and_its_errors(runs, tmp_path):
    run = runs["classification"]
    pair = convnlp.load([run, run / "best"])
    single = convnlp.load(run)
    texts = TEXTS["classification"]
    assert [r["label"] for r in pair.predict(texts)] == [r["label"] for r in single.predict(texts)]
    with pytest.raises(UserError, match="checkpoint directory not found"):
        convnlp.load(tmp_path / "absent")
    with pytest.raises(UserError, match=r"predict: texts\[1\] is int 3, not a str"):
        single.predict(["fine", 3])
    with pytest.raises(UserError, match="batch_size=0 must be a whole number"):
        single.predict(texts, batch_size=0)
    mixed = [runs["classification"], runs["tagging"]]
    with pytest.raises(UserError, match="task=tagging where"):
        convnlp.load(mixed)
