"""Where a run starts from: ``trainer.resume`` (its own last/ checkpoint, or the newest
unfinished run of the same config) and ``trainer.init`` (another run's weights), and the config
comparisons that decide whether a checkpoint fits a run.

A run directory that a later run resumed holds ``resumed_by``; ``resume=true`` skips it once the
later run has written a last/ of its own, so a resume killed before its first checkpoint loses
nothing. A last/ mid-swap (``.last.old``, see checkpoint.py) counts as the run's last/.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from convnlp import checkpoint
from convnlp.config import validate_group
from convnlp.errors import UserError

MODEL_GROUPS = ("task", "encoder", "decoder", "tokenizer", "data")  # what a resumed run must share
RESUME_NOT_COMPARED = {"data": {"split"}}  # the split `convnlp eval` reads
# what a run started from a checkpoint (trainer.init) must share with it, less the keys that do
# not shape the weights
INIT_GROUPS = ("task", "encoder", "decoder", "tokenizer")
INIT_NOT_COMPARED = {"decoder": {"too_long"}, "task": {"predict_max_chars", "predict_context_words"}}


def _with_defaults(group: str, values: dict) -> dict:
    """A group's values with the schema's defaults filled in, so a config saved before a key
    existed compares equal to one with that key at its default."""
    try:
        return OmegaConf.to_container(validate_group(group, OmegaConf.create(values)))
    except UserError:
        return values


def config_difference(saved: dict, current: dict, names: tuple[str, str] = ("there", "now"),
                      groups: tuple[str, ...] = MODEL_GROUPS,
                      not_compared: dict[str, set[str]] = RESUME_NOT_COMPARED) -> str | None:
    """The first model-defining key of ``groups`` where two run configs differ, or None; ``names``
    say where each value is from; ``not_compared`` the keys of a group left out."""
    for group in groups:
        a, b = (_with_defaults(group, c.get(group) or {}) if c.get(group) else {} for c in (saved, current))
        skip = not_compared.get(group, ())
        a = {k: v for k, v in a.items() if k not in skip}
        b = {k: v for k, v in b.items() if k not in skip}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{group}.{key}: {a.get(key)!r} {names[0]}, {b.get(key)!r} {names[1]}"
    return None


def _resumable_checkpoint(last: Path) -> Path | None:
    """A last/ directory (or its previous version, if a save was killed while swapping them)
    that holds a training state and a config, or None."""
    try:
        last = checkpoint.existing(last)
    except UserError:
        return None
    return last if (last / "training_state.pt").is_file() and (last / "config.json").is_file() else None


def _resumable(run: Path) -> Path | None:
    """A run directory's resumable last/ checkpoint, or None."""
    return _resumable_checkpoint(run / "last")


def _superseded(run: Path) -> bool:
    """Whether a run was resumed by another that got far enough to write its own last/; a
    resuming run killed before its first checkpoint leaves the run it resumed resumable."""
    marker = run / "resumed_by"
    if not marker.is_file():
        return False
    return any(_resumable(Path(line)) for line in marker.read_text().split("\n") if line.strip())


def find_resume_dir(resume, run_dir: Path, config: dict) -> Path | None:
    """``trainer.resume``: false, a path to a run or its last/ directory, or true for the newest
    unfinished run with the same config beside this one (same parent directory) that no later
    run has taken further."""
    if resume in (False, None, "false", "False"):
        return None
    if resume not in (True, "true", "True"):
        path = Path(str(resume))
        last = _resumable(path) or _resumable_checkpoint(path)
        if last is None:
            raise UserError(f"trainer.resume={resume}: no resumable checkpoint (last/training_state.pt) there"
                            + ("; the run stopped before its first checkpoint (trainer.checkpoint_minutes)"
                               if (path / ".hydra").is_dir() else ""))
        return last
    candidates, finished = [], []
    for run in run_dir.parent.iterdir():
        last = _resumable(run) if run.is_dir() and run != run_dir else None
        if last is None or _superseded(run):
            continue
        try:
            done = json.loads((last / "metrics.json").read_text()).get("finished", False)
            saved = json.loads((last / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if config_difference(saved, config) is None and teacher_difference(saved, config) is None:
            (finished if done else candidates).append(last)
    if not candidates:
        newest = max(finished, key=lambda p: p.stat().st_mtime).parent if finished else None
        raise UserError(f"trainer.resume=true: no unfinished run of this config with a last/ checkpoint "
                        f"in {run_dir.parent}" + (
                            f"; the newest run of this config, {newest}, has finished (to train it further, raise "
                            f"its limit and give trainer.resume={newest})" if newest else
                            "; give its path instead: trainer.resume=DIR"))
    return max(candidates, key=lambda p: p.stat().st_mtime)


def teacher_difference(saved: dict, current: dict) -> str | None:
    """Why a run cannot resume another whose training targets came from another teacher, or None."""
    teachers = [(c.get("trainer") or {}).get("teacher") for c in (saved, current)]
    if teachers[0] != teachers[1]:
        return f"trainer.teacher: {teachers[0]!r} there, {teachers[1]!r} now"
    return None


def find_init_dir(init) -> Path | None:
    """``trainer.init``: a checkpoint directory, or a run directory (its best/)."""
    if init in (None, "", "null", "None"):
        return None
    try:
        return checkpoint.existing(str(init))
    except UserError as e:
        raise UserError(f"trainer.init: {e}") from None
