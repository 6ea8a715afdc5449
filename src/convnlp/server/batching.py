"""Dynamic batching: the texts of concurrent requests predicted together, in one call.

Each request puts its texts on a queue and awaits its own answers. One worker takes the first
request waiting, then every request already queued and those that arrive within ``max_wait_ms``,
up to ``max_batch`` texts, and predicts them in one call on its own thread (the event loop goes
on accepting requests meanwhile), then hands each request its slice of the records. Under load
the queue fills while a batch computes, so batches grow with concurrency and no request waits
for a timer; alone, a request waits at most ``max_wait_ms`` for company.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Request:
    texts: list[str]
    key: Hashable  # requests with different decoding settings are predicted apart
    answer: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    """Counts for ``GET /health``: batches run, texts predicted, the largest batch, requests waiting."""

    batches: int = 0
    texts: int = 0
    largest: int = 0

    def add(self, size: int) -> None:
        self.batches, self.texts, self.largest = self.batches + 1, self.texts + size, max(self.largest, size)


class Stopped(Exception):
    """The server is stopping: a request that arrives now is not taken."""


class Batcher:
    """``await batcher.predict(texts, key)``: the records of ``texts``, from ``predict(texts, key)``
    called on a worker thread with the texts of every request gathered with them."""

    def __init__(self, predict: Callable[[list[str], Hashable], list[dict]], max_batch: int, max_wait_ms: float):
        self._predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue[Request | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convnlp-predict")
        self._worker: asyncio.Task | None = None
        self._stopping = False
        self.stats = BatchStats()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="convnlp-batcher")

    async def stop(self) -> None:
        """Take no more requests, answer those queued (a cancelled one is skipped), stop the worker."""
        self._stopping = True
        if self._worker is not None:
            await self._queue.put(None)
            await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)

    async def predict(self, texts: list[str], key: Hashable = None) -> list[dict]:
        if not texts:
            return []
        if self._stopping or self._worker is None or self._worker.done():
            raise Stopped("the server is stopping")
        request = Request(texts, key, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.answer

    async def _gather(self, first: Request) -> tuple[list[Request], bool]:
        """``first`` and the requests that join it; True when the queue's end (None) was reached."""
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            if self._queue.empty():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:  # TimeoutError from Python 3.11 on, its own class before
                    break
            else:
                request = self._queue.get_nowait()
            if request is None:
                return batch, True
            batch.append(request)
            size += len(request.texts)
        return batch, False

    async def _run(self) -> None:
        while (first := await self._queue.get()) is not None:
            batch, end = await self._gather(first)
            groups: dict[Hashable, list[Request]] = {}
            for request in batch:
                if not request.answer.done():  # a client gone, or cut off by the shutdown's time limit
                    groups.setdefault(request.key, []).append(request)
            for key, requests in groups.items():
                await self._answer(key, requests)
            if end:
                break

    async def _answer(self, key: Hashable, requests: list[Request]) -> None:
        """Predict the requests' texts in one call; if that fails, each request alone, so one
        request's failure is its own."""
        texts = [text for request in requests for text in request.texts]
        try:
            records = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, texts, key)
        except Exception as e:
            if len(requests) > 1:
                for request in requests:
                    await self._answer(key, [request])
                return
            log.warning("a request of %d texts failed: %s: %s", len(texts), type(e).__name__, e)
            if not requests[0].answer.done():
                requests[0].answer.set_exception(e)
            return
        self.stats.add(len(texts))
        offset = 0
        for request in requests:
            if not request.answer.done():
                request.answer.set_result(records[offset : offset + len(request.texts)])
            offset += len(request.texts)
