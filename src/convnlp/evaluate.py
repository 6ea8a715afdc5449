"""`convnlp eval`: metrics of a checkpoint on a data split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from convnlp.api import load_model
from convnlp.config import validate_group
from convnlp.data import load_splits
from convnlp.errors import UserError
from convnlp.tasks import with_decoding
from convnlp.threads import ThreadPolicy

log = logging.getLogger(__name__)


def evaluate_checkpoint(cfg: DictConfig, run_dir: Path) -> dict:
    threads = ThreadPolicy(cfg.threads)  # 0: the cores other processes leave free
    loaded, device = load_model(cfg.checkpoint, cfg.runtime, cfg.device, cfg.threads)
    model, config, task = loaded.model, loaded.config, loaded.task
    chosen = threads.start(logging.DEBUG)  # standard output is the metrics' JSON
    if getattr(model, "threads", None) == 0:  # ONNX Runtime: the threads the policy chose
        model.set_threads(chosen)
    split = cfg.data.split
    if "name" in cfg.data:  # data=... given on the command line
        data_cfg = cfg.data
    else:  # the checkpoint's own data, with the requested split
        data_cfg = validate_group("data", OmegaConf.merge(OmegaConf.create(config["data"]), {"split": split}))
    if split in data_cfg and not data_cfg.get(split):  # file-based data without this split's file
        raise UserError(f"data={data_cfg.name} has no {split} file: set data.{split}=PATH")
    data = load_splits(data_cfg, splits=(split,), task=config["task"]["name"])
    if split not in data:  # e.g. data=hub with data.test_split=null
        raise UserError(f"data={data_cfg.name} has no {split} split configured")
    data = data[split]
    task_cfg = with_decoding(loaded.task_cfg, cfg.get("beam"))
    unseen = task.report_unseen(data, loaded.labels, split, task_cfg, loaded.tokenizer)
    metrics = task.evaluate(model, loaded.tokenizer, loaded.labels, data, task_cfg, device, cfg.batch_tokens)
    # labels training never saw: each of their tokens or texts is an error
    named = [str(c) for c in cfg.checkpoint] if isinstance(cfg.checkpoint, ListConfig) else str(cfg.checkpoint)
    result = {
        "checkpoint": named,
        "data": data_cfg.name,
        "split": split,
        **metrics,
        "unseen_labels": unseen,
        "runtime": cfg.runtime,
        "threads": getattr(model, "threads", None) or torch.get_num_threads(),
    }
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    log.info("wrote %s", run_dir / "metrics.json")
    return result
