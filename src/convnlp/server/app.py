"""The HTTP application of ``convnlp serve`` (FastAPI): ``POST /predict``, ``GET /health``,
``GET /info``, ``GET /`` (a page to try the model) and the OpenAPI schema at ``/openapi.json``
(``/docs`` renders it).

``POST /predict`` takes ``{"texts": ["...", ...]}`` (and, for generation with an autoregressive
decoder, optional ``"beam"`` and ``"nbest"``) and answers ``{"predictions": [record, ...]}``, one
record per text in order, each the record ``convnlp predict`` writes for that text as a line.
Every error is JSON, ``{"error": "<one line>"}``: 400 for a body that is not JSON, 413 beyond a
limit (``max_body_bytes``, ``max_texts``, ``max_chars``, ``max_beam``), 422 for JSON of the wrong
shape or a beam the model cannot use, 503 once the server is stopping.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from convnlp import __version__
from convnlp.api import Predictor
from convnlp.decoders import is_autoregressive
from convnlp.errors import UserError, first_line
from convnlp.server.batching import Batcher, Stopped
from convnlp.tasks import with_decoding

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


REQUEST_SCHEMA = {
    "type": "object",
    "required": ["texts"],
    "properties": {
        "texts": {
            "type": "array",
            "items": {"type": "string"},
            "description": "one text (a line of predict's input) each",
        },
        "beam": {"type": "integer", "minimum": 1, "description": "generation with convs2s or lstm: the beam width"},
        "nbest": {
            "type": "integer",
            "minimum": 0,
            "description": "generation with convs2s or lstm: the N best outputs",
        },
    },
    "additionalProperties": False,
}
RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {"predictions": {"type": "array", "items": {"type": "object"}}},
}
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}}


async def read_body(scope, receive, limit: int) -> bytes | None:
    """The request body, ``Rejected`` (413) when it is over ``limit`` bytes, by its Content-Length
    or counted as it streams in; None when the client went away."""
    length = dict(scope["headers"]).get(b"content-length")
    too_large = Rejected(413, f"the request body is over max_body_bytes={limit} bytes")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise too_large
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            raise too_large
    return b"".join(chunks)


def _allowed_host(scope) -> bool:
    """On loopback: whether the Host header names the loopback, not a name a page elsewhere had
    its DNS point at 127.0.0.1 (DNS rebinding)."""
    host = dict(scope["headers"]).get(b"host", b"")
    name = host[: host.index(b"]") + 1] if host.startswith(b"[") and b"]" in host else host.split(b":")[0]
    return name.decode("latin-1").lower() in ("127.0.0.1", "localhost", "[::1]")


class PredictFirst:
    """The ASGI application uvicorn runs: ``POST /predict`` answered here, in as few steps as the
    protocol takes (it is the request that comes by the thousand), everything else (``/health``,
    ``/info``, the page, the schema, the lifespan) by the FastAPI application ``api``."""

    def __init__(self, api: FastAPI, answer, settings: Settings):
        self.api, self.answer, self.settings = api, answer, settings
        self.loopback = settings.host in LOOPBACK

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.loopback and not _allowed_host(scope):
            return await self._send(send, 400, {"error": "Invalid host header"})
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            return await self.api(scope, receive, send)
        try:
            body = await read_body(scope, receive, self.settings.max_body_bytes)
        except Rejected as e:
            return await self._send(send, e.status, {"error": e.message})
        if body is not None:
            await self._send(send, *await self.answer(body))

    @staticmethod
    async def _send(send, status: int, content: dict) -> None:
        data = records_json(content)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def parse(body: bytes, limits: Settings) -> tuple[list[str], int | None, int | None]:
    """The texts, beam and nbest (None where not given) of a ``POST /predict`` body, or ``Rejected``."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Rejected(400, f"the request body is not JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise Rejected(400, "the request body is not JSON this server reads: nested too deeply") from None
    if not isinstance(request, dict):
        raise Rejected(422, f'the request body is a JSON {type(request).__name__}; send {{"texts": ["...", ...]}}')
    unknown = sorted(set(request) - set(REQUEST_SCHEMA["properties"]))
    if unknown:
        raise Rejected(422, f"unknown field {unknown[0]!r}; the fields are: texts, beam, nbest")
    texts = request.get("texts")
    if not isinstance(texts, list):
        raise Rejected(422, f'"texts" must be a list of strings, not {_kind(texts)}')
    if len(texts) > limits.max_texts:
        raise Rejected(413, f"{len(texts)} texts in one request; max_texts={limits.max_texts}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise Rejected(422, f"texts[{i}] must be a string, not {_kind(text)}")
        if len(text) > limits.max_chars:
            raise Rejected(413, f"texts[{i}] has {len(text)} characters; max_chars={limits.max_chars}")
    beam, nbest = request.get("beam"), request.get("nbest")
    for name, value, least in (("beam", beam, 1), ("nbest", nbest, 0)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise Rejected(422, f'"{name}" must be a whole number, at least {least}, not {json.dumps(value)}')
    return texts, beam, nbest


def _kind(value) -> str:
    return (
        "null"
        if value is None
        else {dict: "an object", list: "a list", str: "a string"}.get(
            type(value), f"{type(value).__name__} {json.dumps(value)[:40]}"
        )
    )


@dataclass(frozen=True)
class Settings:
    """serve's settings that the application applies (conf/serve.yaml says what each is)."""

    host: str = "127.0.0.1"
    max_body_bytes: int = 1 << 20
    max_texts: int = 1000
    max_chars: int = 10_000
    max_batch: int = 256
    max_wait_ms: float = 0.0
    beam: int | None = None
    nbest: int = 0
    max_beam: int = 16

    def request(self, body: bytes, task_cfg: dict) -> tuple[list[str], tuple[int | None, int]]:
        """The texts of a ``POST /predict`` body and their decoding (beam, nbest); ``Rejected`` or
        ``UserError`` (a beam the model cannot use)."""
        texts, beam, nbest = parse(body, self)
        return texts, self.decoding(task_cfg, beam, nbest)

    def decoding(self, task_cfg: dict, beam: int | None = None, nbest: int | None = None) -> tuple[int | None, int]:
        """(beam, nbest): a request's, else these defaults; refused here (413 over ``max_beam``,
        ``UserError`` for a model that does not search), not in the batch it would join."""
        key = (self.beam if beam is None else beam, self.nbest if nbest is None else nbest)
        for name, value in zip(("beam", "nbest"), key):
            if value is not None and value > self.max_beam:
                raise Rejected(413, f'"{name}": {value} is over max_beam={self.max_beam}')
        if key != (None, 0):
            with_decoding(task_cfg, *key)
        return key

    def check(self, task_cfg: dict) -> None:
        """The server's own ``beam`` and ``nbest``, as every request would get them: ``UserError``."""
        try:
            self.decoding(task_cfg)
        except Rejected as e:
            raise UserError(f"the server's defaults: {e.message}") from None

    def public(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "host"}


def card(predictor: Predictor, checkpoints: list[str], runtime: str) -> dict:
    """``GET /info``: what the model is, what it was measured at, what runs it."""
    config = predictor.config
    members = []
    for path in checkpoints:
        metrics = _metrics(Path(path))
        members.append(
            {"checkpoint": path, **{k: metrics[k] for k in ("validation", "test", "train_seconds") if k in metrics}}
        )
    task_cfg = predictor.task_config
    return {
        "task": predictor.task_name,
        "labels": list(predictor.labels),
        "encoder": config.get("encoder"),
        "decoder": config.get("decoder"),
        "data": {k: v for k, v in (config.get("data") or {}).items() if k in ("name", "path", "hub", "description")},
        "beam": task_cfg.get("beam") if predictor.task_name == "generation" else None,
        "autoregressive": predictor.task_name == "generation" and is_autoregressive(task_cfg["decoder"]),
        "models": members,
        "runtime": runtime,
        "device": str(predictor.device),
        "threads": torch.get_num_threads(),
        "versions": {"convnlp": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def _metrics(path: Path) -> dict:
    """The metrics of a checkpoint (its own metrics.json, else its run's), {} when none is readable."""
    for candidate in (path / "best" / "metrics.json", path / "metrics.json", path.parent / "metrics.json"):
        try:
            metrics = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(metrics, dict) and ("test" in metrics or "validation" in metrics):
            return metrics
    return {}


PREDICT_OPENAPI = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}},
    "responses": {
        "200": {"content": {"application/json": {"schema": RESPONSE_SCHEMA}}},
        **{
            str(s): {"description": d, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for s, d in (
                (400, "not JSON"),
                (413, "beyond a limit"),
                (422, "JSON of the wrong shape, or a setting the model cannot use"),
                (503, "the server is stopping"),
            )
        },
    },
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def records_json(content) -> bytes:
    """JSON as ``convnlp predict`` writes it: non-ASCII as is, and a score of -inf or NaN written
    (as Python's json module writes it) rather than refused."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Records(JSONResponse):
    def render(self, content) -> bytes:
        return records_json(content)


def create_app(predictor: Predictor, info: dict, settings: Settings = Settings()) -> PredictFirst:
    """The ASGI application serving ``predictor`` (``info``: ``GET /info``'s answer)."""
    threads = torch.get_num_threads()

    def predict(texts: list[str], key: tuple[int | None, int]) -> list[dict]:
        torch.set_num_threads(threads)  # the worker thread's own setting
        return predictor.predict(texts, batch_size=max(len(texts), 1), beam=key[0], nbest=key[1])

    batcher = Batcher(predict, settings.max_batch, settings.max_wait_ms)

    async def answer(body: bytes) -> tuple[int, dict]:
        """The status and JSON of a ``POST /predict`` body."""
        try:
            texts, key = settings.request(body, predictor.task_config)
            return 200, {"predictions": await batcher.predict(texts, key)}
        except Rejected as e:
            return e.status, {"error": e.message}
        except UserError as e:  # a setting the model cannot use; an input predict refuses
            return 422, {"error": str(e)}
        except Stopped as e:
            return 503, {"error": str(e)}
        except Exception as e:  # the model failed on this request: one line here and in the log
            log.warning("POST /predict: %s: %s", type(e).__name__, e)
            return 500, {"error": f"{type(e).__name__}: {first_line(e)}"}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    api = FastAPI(
        title="convnlp serve",
        version=__version__,
        lifespan=lifespan,
        description=f'A {predictor.task_name} model of convnlp: POST /predict with {{"texts": [...]}}.',
    )

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @api.post("/predict", summary="the records of texts, as convnlp predict writes them", openapi_extra=PREDICT_OPENAPI)
    async def predict_texts(request: Request):  # its schema; PredictFirst answers POST /predict before it
        status, content = await answer(await request.body())
        return Records(content, status_code=status)

    _info_routes(api, predictor, info, settings, batcher)
    return PredictFirst(api, answer, settings)


def _info_routes(app: FastAPI, predictor: Predictor, info: dict, settings: Settings, batcher: Batcher) -> None:
    started = time.time()
    page = resources.files("convnlp.server").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health", summary="the server is up; counts of its batches")
    async def health():
        stats = batcher.stats
        return {
            "status": "ok",
            "task": predictor.task_name,
            "uptime_s": round(time.time() - started, 1),
            "waiting": batcher.waiting,
            "batches": stats.batches,
            "texts": stats.texts,
            "largest_batch": stats.largest,
        }

    @app.get("/info", summary="the model: task, labels, encoder, metrics, versions; the server's settings")
    async def model_info():
        return {**info, "serve": settings.public()}

    @app.get("/", response_class=HTMLResponse, summary="a page to try the model")
    async def index():
        return HTMLResponse(page)
