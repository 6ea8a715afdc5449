"""Gathering work into batches without a model: serve's ``Batcher`` (concurrent requests, one
predict call) and predict's ``chunks`` (full batches from a file, prompt ones from a pausing pipe)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from convnlp.inputs import PipeLines, chunks, read_lines
from convnlp.server.batching import Batcher


def _echo(calls: list):
    def predict(texts, key):
        calls.append((list(texts), key))
        time.sleep(0.01)  # a batch takes a while, as a model's does: requests queue meanwhile
        return [{"text": t, "key": key} for t in texts]

    return predict


def test_concurrent_requests_are_predicted_together_and_each_gets_its_own():
    calls = []

    async def main():
        batcher = Batcher(_echo(calls), max_batch=64, max_wait_ms=20)
        batcher.start()
        requests = [[f"r{i}-{k}" for k in range(i % 3 + 1)] for i in range(40)]
        answers = await asyncio.gather(*(batcher.predict(texts) for texts in requests))
        await batcher.stop()
        return requests, answers, batcher.stats

    requests, answers, stats = asyncio.run(main())
    for texts, records in zip(requests, answers):
        assert [r["text"] for r in records] == texts
    assert stats.texts == sum(map(len, requests)) and stats.batches == len(calls)
    assert len(calls) < 10 and max(len(t) for t, _ in calls) <= 64 + 2  # batched, and bounded (one request over)


def test_requests_of_different_decoding_are_predicted_apart():
    calls = []

    async def main():
        batcher = Batcher(_echo(calls), max_batch=64, max_wait_ms=20)
        batcher.start()
        answers = await asyncio.gather(*(batcher.predict([f"t{i}"], key=(i % 2, 0)) for i in range(10)))
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    assert [a[0]["key"] for a in answers] == [(i % 2, 0) for i in range(10)]
    assert all({(int(t[1:]) % 2, 0) for t in texts} == {key} for texts, key in calls)


def test_an_error_reaches_the_requests_of_its_batch_and_the_worker_goes_on():
    def predict(texts, key):
        if "bad" in texts:
            raise ValueError("cannot")
        return [{"text": t} for t in texts]

    async def main():
        batcher = Batcher(predict, max_batch=8, max_wait_ms=0)
        batcher.start()
        with pytest.raises(ValueError, match="cannot"):
            await batcher.predict(["bad"])
        good = await batcher.predict(["good"])
        assert await batcher.predict([]) == []
        await batcher.stop()
        return good

    assert asyncio.run(main()) == [{"text": "good"}]


def test_stop_answers_what_is_queued_first():
    async def main():
        batcher = Batcher(_echo([]), max_batch=2, max_wait_ms=0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.predict([f"t{i}"])) for i in range(9)]
        await asyncio.sleep(0)  # queued
        await batcher.stop()
        return [p.result()[0]["text"] for p in pending]

    assert asyncio.run(main()) == [f"t{i}" for i in range(9)]


def test_chunks_of_a_file_are_full():
    assert list(chunks(range(10), 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(chunks(range(10), 4, 0.05, lambda timeout: True)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(chunks([], 4)) == []


def test_chunks_of_a_pausing_pipe_are_handed_on_when_it_pauses():
    read, write = os.pipe()
    pipe = PipeLines(os.fdopen(read, "rb"))
    got, when = [], []

    def consume():
        for chunk in chunks(pipe, 1000, 0.05, pipe.ready):
            got.append(chunk)
            when.append(time.monotonic())

    consumer = threading.Thread(target=consume)
    consumer.start()
    os.write(write, b"one\ntwo\nthr")
    written = time.monotonic()
    time.sleep(1.0)  # the writer pauses: the lines that came must not wait for 1000 lines
    assert got == [[b"one\n", b"two\n"]] and when[0] - written < 0.9
    os.write(write, b"ee\n" + b"x\n" * 2500 + b"last")  # a steady stream: full chunks
    os.close(write)
    consumer.join(5)
    assert got[1][0] == b"three\n" and [len(c) for c in got[1:]] == [1000, 1000, 502]
    assert got[-1][-1] == b"last"  # the end of the input without a line end is a line too


def test_predict_from_a_pipe_reads_utf16_and_the_pieces_of_a_line():
    read, write = os.pipe()
    os.write(write, "ab\ncd".encode("utf-16"))
    os.close(write)
    assert list(read_lines(PipeLines(os.fdopen(read, "rb")), "<stdin>", "utf-16")) == ["ab", "cd"]
