"""`convnlp serve`: a model behind HTTP, with a page to try it (conf/serve.yaml)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from convnlp.commands.eval import BATCH, BEAM, DEVICES, NBEST, RUNTIMES, THREADS
from convnlp.errors import UserError
from convnlp.registry import COMMANDS, Check, option, positive, zero_or_more

PORT = Check(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535,
    "must be a port number, 0 (a free one) to 65535",
)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass
class ServeCommand:
    checkpoint: Any = option(
        "???", help="a checkpoint, a run directory (its best/), a list (an ensemble), or an exported directory"
    )
    host: str = option("127.0.0.1", help="the address to listen on; 0.0.0.0: every interface (other machines too)")
    port: int = option(8000, PORT, help="0: a free port (the address is printed)")
    runtime: str = option("torch", choices=RUNTIMES, help="onnx: an exported directory, by ONNX Runtime")
    device: str = option("auto", choices=DEVICES)
    threads: int = option(0, THREADS, help="the predicting thread's intra-op threads; 0: the free cores at start")
    max_batch: int = option(256, BATCH, help="requests are gathered into a batch until it holds this many texts")
    max_wait_ms: float = option(0.0, zero_or_more(), help="how long a batch waits for more requests (0: none)")
    max_body_bytes: int = option(1 << 20, BATCH, help="a larger request body: 413")
    max_texts: int = option(1000, BATCH, help="more texts in one request: 413")
    max_chars: int = option(10_000, BATCH, help="a longer text: 413")
    beam: Any = option(None, BEAM, help="generation with convs2s or lstm: the default beam (a request may set it)")
    nbest: int = option(0, NBEST, help="generation with convs2s or lstm: the default n-best (a request may set it)")
    max_beam: int = option(16, BATCH, help="a request's beam or nbest over it: 413")
    graceful_seconds: float = option(30.0, positive(), help="after SIGTERM, how long requests in flight may take")
    access_log: bool = option(False, help="a log line per request (costs throughput)")
    log_level: str = option("warning", choices=LOG_LEVELS)


@COMMANDS.register(
    ServeCommand,
    name="serve",
    order=3.5,
    summary="a model behind HTTP",
    examples=(
        "convnlp serve checkpoint=outputs/train/<run>        (then open http://127.0.0.1:8000/)",
        'curl -s localhost:8000/predict -d \'{"texts": ["The cat sat ."]}\'',
    ),
)
def run(cfg: DictConfig, run_dir: Path | None, given: set[str]):
    # imported when it runs: `convnlp --help` loads neither torch nor the web stack
    try:
        from convnlp.server.main import serve_command
    except ImportError as e:
        raise UserError(f"convnlp serve needs the serve extra: pip install 'convnlp[serve]' ({e})") from None

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    serve_command(cfg)  # uvicorn's log levels: set there, after uvicorn.Config has set its own
