"""Shared fixtures: small real data files, the shared datasets folder, a tiny trained run."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

# ------------------------------------------------------------------ tests that need the machine alone
# A test marked `alone` measures the machine (e.g. that its cores are free). Beside other
# pytest-xdist workers it cannot, so the workers skip it and, once they have all finished, the
# controlling process runs the `alone` tests in one process of their own and fails the session
# if they fail. With -n0 they run in line, as any test.


def _worker() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_collection_modifyitems(config, items):
    if _worker():
        later = pytest.mark.skip(reason="runs alone, after the parallel workers (tests/conftest.py)")
        for item in items:
            if item.get_closest_marker("alone"):
                item.add_marker(later)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _worker() or not config.pluginmanager.hasplugin("dsession") or session.shouldstop:
        return  # a worker, a run without workers (alone tests ran in line), or a stopped run
    marks = config.getoption("markexpr") or ""
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-n0",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        f"alone and ({marks})" if marks else "alone",
        *config.args,
    ]
    if config.getoption("keyword"):
        args += ["-k", config.getoption("keyword")]
    result = subprocess.run(args, cwd=config.invocation_params.dir, capture_output=True, text=True)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("-", "tests marked alone, run after the workers")
        reporter.write(result.stdout[-5000:] + result.stderr[-2000:])
    if result.returncode not in (0, 5):  # 5: none selected
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ../shared/datasets beside the checkout (as in CI), or wherever CONVNLP_DATA_DIR points
SHARED = Path(os.environ.get("CONVNLP_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
PLACES = ["Paris", "Berlin", "Oslo", "Lima", "Cairo", "Delhi"]
VERBS = ["met", "saw", "called", "visited", "left"]


def bio_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Small, learnable named-entity data: names are B-PER, places B-LOC / I-LOC."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sentence = [(rng.choice(NAMES), "B-PER"), (rng.choice(VERBS), "O")]
        if rng.random() < 0.5:
            sentence += [("in", "O"), ("New", "B-LOC"), (rng.choice(PLACES), "I-LOC")]
        else:
            sentence += [(rng.choice(NAMES), "B-PER"), ("in", "O"), (rng.choice(PLACES), "B-LOC")]
        sentence.append((".", "O"))
        out.append(sentence)
    return out


def write_conll(path: Path, sentences, docstart: bool = True) -> Path:
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for sentence in sentences:
        lines += [f"{word} X {tag}" for word, tag in sentence] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def conll_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conll")
    return {
        split: write_conll(root / f"{split}.txt", bio_sentences(n, seed))
        for split, n, seed in (("train", 200, 1), ("validation", 40, 2), ("test", 40, 3))
    }


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED / "ud_en_ewt" / "dev.conllu").is_file():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


TINY = [
    "encoder.width=16",
    "encoder.dilations=[1,2]",
    "encoder.blocks=1",
    "task.embedding_dim=8",
    "task.word_layers=1",
    "trainer.batch_tokens=600",
    "trainer.progress=false",
]
TINY_CLASSIFIER = [a for a in TINY if not a.startswith("task.word_layers")]


def conll_args(files: dict[str, Path]) -> list[str]:
    return [
        "data=conll",
        f"data.train={files['train']}",
        f"data.validation={files['validation']}",
        f"data.test={files['test']}",
    ]


def convnlp(
    *args: str, cwd: Path, input: str | None = None, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would), in ``cwd``."""
    result = subprocess.run(
        [sys.executable, "-m", "convnlp", *args],
        cwd=cwd,
        input=input.encode("utf-8") if isinstance(input, str) else input,
        capture_output=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    if check and result.returncode != 0:
        raise AssertionError(
            f"convnlp {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def train_tiny(root: Path, name: str, args: list[str]) -> Path:
    """A run of 30 steps on one thread in ``root/name`` (created), through the real CLI."""
    (root / name).mkdir(exist_ok=True)
    convnlp("train", *args, "trainer.max_steps=30", "trainer.threads=1", cwd=root / name)
    (run,) = run_dirs(root / name)
    return run


def run_dirs(cwd: Path, command: str = "train") -> list[Path]:
    return sorted((cwd / "outputs" / command).glob("*/"))


GOOD = ["great", "superb", "lovely", "fun", "moving"]
BAD = ["awful", "dull", "boring", "weak", "messy"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story", "and", "plot", "so"]


def review_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Small, learnable sentiment data: the label is the polarity of the one opinion word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(GOOD if label == "pos" else BAD))
        rows.append((" ".join(words), label))
    return rows


def write_csv_splits(root: Path, rows, sizes: tuple[int, int, int], ids: bool = False) -> dict[str, Path]:
    """CSV files with a header (text, label; ``ids``: an id column first) for train, validation and
    test in ``root``, of ``sizes`` rows each from ``rows(n, seed)`` (seeds 1, 2, 3)."""
    import csv

    files = {}
    for (split, seed), n in zip((("train", 1), ("validation", 2), ("test", 3)), sizes):
        files[split] = root / f"{split}.csv"
        with open(files[split], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", "label"] if ids else ["text", "label"])
            writer.writerows((i, *row) if ids else row for i, row in enumerate(rows(n, seed)))
    return files


@pytest.fixture(scope="session")
def review_files(tmp_path_factory) -> dict[str, Path]:
    """CSV files with a header (id, text, label) for train, validation and test."""
    return write_csv_splits(tmp_path_factory.mktemp("reviews"), review_rows, (300, 60, 60), ids=True)


def review_args(files: dict[str, Path]) -> list[str]:
    return [
        "task=classification",
        "data=csv",
        f"data.train={files['train']}",
        f"data.validation={files['validation']}",
        f"data.test={files['test']}",
    ]


TINY_GENERATION = [  # the task and a tiny encoder; each decoder adds its own settings
    "task=generation",
    "task.embedding_dim=16",
    "encoder.width=32",
    "encoder.dilations=[1,2]",
    "encoder.blocks=1",
]
TINY_AR = [  # with decoder=convs2s or decoder=lstm
    *TINY_GENERATION,
    "decoder.width=32",
    "decoder.embedding_dim=16",
    "decoder.source_length=8",
    "decoder.max_length=10",
    "decoder.dropout=0.0",
    "trainer.progress=false",
    "trainer.threads=1",
    "trainer.batch_tokens=400",
    "optim.warmup_steps=20",
    "optim.lr=0.005",
]
TINY_GENERATOR = [
    *TINY_GENERATION,
    "decoder.width=32",
    "decoder.rest_dilations=[1,2]",
    "decoder.source_length=8",
    "decoder.down=1",
    "decoder.max_length=8",
    "trainer.progress=false",
]


def spelling_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Small, learnable parallel data: a word of a few letters -> its letters as capital tokens,
    a doubled letter read once ("abba" -> "A B A")."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefg") for _ in range(rng.randint(1, 6)))
        tokens = [c.upper() for i, c in enumerate(word) if i == 0 or c != word[i - 1]]
        rows.append((word, " ".join(tokens)))
    return rows


@pytest.fixture(scope="session")
def spelling_files(tmp_path_factory) -> dict[str, Path]:
    """TSV files (source<TAB>target) for train, validation and test."""
    root = tmp_path_factory.mktemp("spelling")
    files = {}
    for split, n, seed in (("train", 600, 1), ("validation", 60, 2), ("test", 60, 3)):
        files[split] = root / f"{split}.tsv"
        files[split].write_text("".join(f"{s}\t{t}\n" for s, t in spelling_rows(n, seed)))
    return files


def spelling_args(files: dict[str, Path]) -> list[str]:
    return [
        "data=parallel",
        f"data.train={files['train']}",
        f"data.validation={files['validation']}",
        f"data.test={files['test']}",
    ]
