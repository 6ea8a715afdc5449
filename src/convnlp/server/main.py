"""`convnlp serve`: a checkpoint (or an ensemble, or an exported ONNX model) behind HTTP.

One process: uvicorn runs the application of ``convnlp.server.app`` on ``host:port`` (127.0.0.1
unless told otherwise; port 0: a free one), predictions run on one worker thread with
``threads`` intra-op threads, and concurrent requests are batched together (``max_batch``,
``max_wait_ms``). SIGTERM or Ctrl-C stops accepting connections, answers the requests in
flight (for up to ``graceful_seconds``), and exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn
from omegaconf import DictConfig, ListConfig, OmegaConf

from convnlp.api import Predictor, load_model
from convnlp.errors import UserError
from convnlp.server.app import Settings, card, create_app
from convnlp.threads import ThreadPolicy

log = logging.getLogger(__name__)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"host={host} port={port}: cannot listen there ({e.strerror})") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _stopped(signum, frame) -> None:
    """SIGTERM or SIGINT outside uvicorn's own handling (while loading, or re-raised by uvicorn
    after its graceful shutdown): a requested stop, status 0."""
    sys.exit(0)


def serve_command(cfg: DictConfig) -> None:
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, _stopped)
    checkpoints = (
        [str(c) for c in cfg.checkpoint] if isinstance(cfg.checkpoint, (list, ListConfig)) else [str(cfg.checkpoint)]
    )
    threads = ThreadPolicy(cfg.threads).start(logging.DEBUG)  # fixed from here: a server's load is its own
    loaded, device = load_model(
        checkpoints if len(checkpoints) > 1 else checkpoints[0], cfg.runtime, cfg.device, threads
    )
    if getattr(loaded.model, "threads", None) == 0:  # ONNX Runtime: the threads chosen above
        loaded.model.set_threads(threads)
    predictor = Predictor(loaded, device)
    settings = Settings(
        cfg.host,
        cfg.max_body_bytes,
        cfg.max_texts,
        cfg.max_chars,
        cfg.max_batch,
        float(cfg.max_wait_ms),
        cfg.beam,
        cfg.nbest,
        cfg.max_beam,
    )
    settings.check(predictor.task_config)  # the defaults every request gets: refused now, not per request
    app = create_app(predictor, card(predictor, checkpoints, cfg.runtime), settings)
    sock = _listen(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(
        f"convnlp serve: {predictor!r} at {url} (POST /predict, GET /health, GET /info, the page: {url}/); "
        f"Ctrl-C or SIGTERM stops it",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        log_level=cfg.log_level,
        access_log=cfg.access_log,
        timeout_graceful_shutdown=cfg.graceful_seconds,
        log_config=None,
    )
    if cfg.access_log:  # uvicorn.Config set it to log_level
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    log.debug("serving with %s", OmegaConf.to_container(cfg))
    uvicorn.Server(config).run(sockets=[sock])
