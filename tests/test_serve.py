"""`convnlp serve` as real server processes on free loopback ports: parity with `convnlp predict`
for every task (one checkpoint, an ensemble, an exported ONNX model), concurrent clients each
getting their own answers, every limit and bad request, SIGTERM with requests in flight, and the
page driven in a real headless Chromium."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from convnlp.server.process import BROWSER_FLAGS
from convnlp.server.process import ServerProcess as Server
from convnlp.tasks.tagging import is_bio
from tests.conftest import (
    TINY,
    TINY_AR,
    TINY_CLASSIFIER,
    TINY_GENERATOR,
    conll_args,
    review_args,
    spelling_args,
    train_tiny,
)
from tests.conftest import convnlp as run_convnlp

pytestmark = pytest.mark.slow

TEXTS = {
    "tagging": ["Alice met Bob in Paris .", "", "Grace left in New Oslo ."],
    "classification": ["the film was great", "", "a dull and boring story"],
    "generation": ["abba", "", "gfedcba"],
    "convs2s": ["abba", "", "gfedcba", "cab"],
}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, conll_files, review_files, spelling_files):
    root = tmp_path_factory.mktemp("serve")
    return {
        "tagging": train_tiny(root, "tagging", [*conll_args(conll_files), *TINY]),
        "classification": train_tiny(root, "classification", [*review_args(review_files), *TINY_CLASSIFIER]),
        "generation": train_tiny(root, "generation", [*spelling_args(spelling_files), *TINY_GENERATOR]),
        "convs2s": train_tiny(root, "convs2s", [*spelling_args(spelling_files), *TINY_AR, "decoder=convs2s"]),
    }


def _predicted(checkpoint: str, texts: list[str], cwd: Path, *extra: str) -> list[dict]:
    """What `convnlp predict` writes for ``texts`` as lines."""
    out = run_convnlp("predict", checkpoint, "device=cpu", *extra, cwd=cwd, input="\n".join(texts) + "\n")
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("task", list(TEXTS))
def test_predict_answers_what_the_command_line_writes(runs, task, tmp_path):
    checkpoint = f"checkpoint={runs[task]}"
    with Server(tmp_path, checkpoint, "threads=1") as server:
        assert server.predict(TEXTS[task]) == _predicted(checkpoint, TEXTS[task], tmp_path)
        assert server.predict([]) == []
        status, health = server.get("/health")
        assert status == 200 and health["status"] == "ok" and health["texts"] == len(TEXTS[task])
        status, info = server.get("/info")
        name = "generation" if task == "convs2s" else task
        assert status == 200 and info["task"] == name and info["labels"]
        assert info["models"][0]["test"]  # the checkpoint's measured figures, for the page's card
        assert info["versions"]["convnlp"] and info["serve"]["max_texts"] == 1000
        status, schema = server.get("/openapi.json")
        assert status == 200 and "/predict" in schema["paths"]
        assert schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        status, page = server.get("/")
        assert status == 200 and "<textarea" in page
        if task == "convs2s":  # a request's own beam and n-best, as predict beam=2 nbest=2 writes them
            expected = _predicted(checkpoint, TEXTS[task], tmp_path, "beam=2", "nbest=2")
            assert server.predict(TEXTS[task], beam=2, nbest=2) == expected
            assert len(expected[0]["nbest"]) == 2
        else:
            status, answer = server.post("/predict", {"texts": ["x"], "beam": 2})
            assert status == 422 and "beam search is for task=generation" in answer["error"]
        assert server.stop() == 0


def test_an_ensemble_and_an_exported_model(runs, tmp_path):
    run = runs["tagging"]
    ensemble = f"checkpoint=[{run},{run / 'best'}]"
    with Server(tmp_path, ensemble, "threads=1") as server:
        assert server.predict(TEXTS["tagging"]) == _predicted(ensemble, TEXTS["tagging"], tmp_path)
        assert len(server.get("/info")[1]["models"]) == 2
        assert server.stop() == 0
    exported = tmp_path / "onnx"
    run_convnlp("export", f"checkpoint={run}", f"output={exported}", cwd=tmp_path)
    onnx = (f"checkpoint={exported}", "runtime=onnx")
    with Server(tmp_path, *onnx, "threads=1") as server:
        assert server.predict(TEXTS["tagging"]) == _predicted(onnx[0], TEXTS["tagging"], tmp_path, onnx[1])
        assert server.get("/info")[1]["runtime"] == "onnx"
        assert server.stop() == 0


def test_concurrent_clients_each_get_their_own_answers(runs, tmp_path):
    sentences = [f"w{i} met w{i + 1} in Paris ." if i % 3 else f"Alice {i} left ." for i in range(400)]
    with Server(tmp_path, f"checkpoint={runs['tagging']}", "threads=1", "max_wait_ms=20") as server:
        expected = server.predict(sentences)  # one request, one batch
        before = server.get("/health")[1]

        def client(start: int) -> list[tuple[int, dict]]:
            answers = []
            for i in range(start, len(sentences), 32):  # one sentence a request, or three
                texts = sentences[i : i + (3 if i % 2 else 1)]
                answers += [(i + k, record) for k, record in enumerate(server.predict(texts))]
            return answers

        with ThreadPoolExecutor(32) as pool:
            answers = [a for chunk in pool.map(client, range(32)) for a in chunk]
        by_index = {}
        for i, record in answers:
            assert record == expected[i], i
            by_index.setdefault(i, record)
        assert sorted(by_index) == list(range(len(sentences)))
        after = server.get("/health")[1]
        requests = len(sentences)  # one request for each index (of one sentence or three)
        assert after["texts"] - before["texts"] == len(answers)
        assert after["batches"] - before["batches"] < requests / 2  # concurrent requests were predicted together
        assert server.stop() == 0


def test_every_limit_and_bad_request_gets_one_line_and_the_server_stays_up(runs, tmp_path):
    limits = ("max_body_bytes=2000", "max_texts=5", "max_chars=50")
    with Server(tmp_path, f"checkpoint={runs['classification']}", "threads=1", *limits) as server:
        cases = [
            (b'{"texts": ["' + b"a " * 1500 + b'"]}', 413, "max_body_bytes=2000"),
            ({"texts": ["fine"] * 6}, 413, "6 texts in one request; max_texts=5"),
            ({"texts": ["fine", "x" * 51]}, 413, "texts[1] has 51 characters; max_chars=50"),
            (b'{"texts": ["unclosed"', 400, "not JSON"),
            (b"\xff\xfe", 400, "not JSON"),
            ({"texts": "one string"}, 422, '"texts" must be a list of strings, not a string'),
            ({"texts": ["fine", 3]}, 422, "texts[1] must be a string, not int 3"),
            ({"texts": ["fine", None]}, 422, "texts[1] must be a string, not null"),
            ({"sentences": ["fine"]}, 422, "unknown field 'sentences'"),
            ([1, 2], 422, "the request body is a JSON list"),
            ({}, 422, '"texts" must be a list of strings, not null'),
            ({"texts": ["fine"], "nbest": -1}, 422, '"nbest" must be a whole number, at least 0'),
            ({"texts": ["fine"], "beam": 10**6}, 413, '"beam": 1000000 is over max_beam=16'),
        ]
        for payload, status, message in cases:
            got, answer = server.post("/predict", payload)
            assert (got, list(answer)) == (status, ["error"]), (payload, got, answer)
            assert message in answer["error"] and "\n" not in answer["error"], answer
        chunked = server.request("POST", "/predict", iter([b'{"texts": ["', b"b" * 3000, b'"]}']))
        assert chunked[0] == 413  # counted as it streams, no Content-Length
        assert server.get("/nowhere") == (404, {"error": "Not Found"})
        assert server.request("PUT", "/predict")[0] == 405
        rebound = server.request("GET", "/info", headers={"Host": "rebound.example"})  # DNS rebinding
        assert rebound == (400, {"error": "Invalid host header"})
        assert server.predict(["the film was great"])[0]["label"]  # still up, still right
        assert server.stop() == 0
    with Server(tmp_path, f"checkpoint={runs['classification']}", "threads=1") as server:
        status, answer = server.post("/predict", {"texts": ["x"] * 1001})  # the default limit
        assert status == 413 and "max_texts=1000" in answer["error"]
        deep = b'{"texts": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"  # under 1 MiB, too deep for the parser
        status, answer = server.post("/predict", deep)
        assert status == 400 and "nested too deeply" in answer["error"]
        server.stop()


def test_bad_settings_fail_in_one_line(runs, tmp_path):
    out = run_convnlp("serve", f"checkpoint={tmp_path / 'absent'}", "port=0", cwd=tmp_path, check=False)
    assert out.returncode != 0 and "checkpoint directory not found" in out.stderr and "Traceback" not in out.stderr
    out = run_convnlp("serve", f"checkpoint={runs['tagging']}", "port=70000", cwd=tmp_path, check=False)
    assert out.returncode != 0 and "port=70000 must be a port number" in out.stderr
    out = run_convnlp("serve", f"checkpoint={runs['tagging']}", "beam=5", "port=0", cwd=tmp_path, check=False)
    assert out.returncode != 0 and "beam search is for task=generation" in out.stderr  # before listening
    with Server(tmp_path, f"checkpoint={runs['tagging']}", "threads=1") as first:
        taken = run_convnlp("serve", f"checkpoint={runs['tagging']}", f"port={first.port}", cwd=tmp_path, check=False)
        assert taken.returncode != 0 and f"port={first.port}: cannot listen there" in taken.stderr
        assert "Traceback" not in taken.stderr
        first.stop()


def test_sigterm_answers_the_requests_in_flight_and_exits_0(runs, tmp_path):
    sentences = ["Alice met Bob in Paris ."] * 300
    with Server(tmp_path, f"checkpoint={runs['tagging']}", "threads=1") as server:
        results, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    status, answer = server.post("/predict", {"texts": sentences})
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    results.append(("refused", sent, time.monotonic(), type(e).__name__))
                    return
                answered = len(answer.get("predictions", [])) if isinstance(answer, dict) else answer
                results.append((status, sent, time.monotonic(), answered))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        while len(results) < 8:
            time.sleep(0.01)
        signalled = time.monotonic()
        code = server.stop()
        stop.set()
        for t in threads:
            t.join(30)
    assert code == 0, "".join(server.lines)
    answered = [r for r in results if r[0] != "refused"]
    assert all(r[0] == 200 and r[3] == len(sentences) for r in answered), results  # whole answers only, no 5xx
    assert any(r[1] < signalled < r[2] for r in answered)  # some were in flight at SIGTERM, and answered


@pytest.mark.skipif(not CHROMIUM, reason="no Chromium installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("task", ["tagging", "classification", "convs2s"])
def test_the_page_in_a_real_browser(runs, task, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    text = {"tagging": "Alice met Bob in Paris .", "classification": "the film was great", "convs2s": "abba"}[task]
    with Server(tmp_path, f"checkpoint={runs[task]}", "threads=1") as server:
        (expected,) = server.predict([text], **({"nbest": 3} if task == "convs2s" else {}))
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=list(BROWSER_FLAGS))
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 640})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]")
                page.fill("#text", text)
                page.click("#submit")
                page.wait_for_selector("#result[data-done]")
                assert page.inner_text("#error") == ""
                _check_page(page, task, expected)
                assert page.inner_text("[data-key=task]") == ("generation" if task == "convs2s" else task)
                page.screenshot(path=str(tmp_path / f"serve_{task}.png"))
            finally:
                browser.close()
        assert server.stop() == 0
    assert (tmp_path / f"serve_{task}.png").stat().st_size > 1000


def _entities(tags: list[str]) -> list[str]:
    """The entity labels the page marks, as displaCy reads BIO tags: B- or S- (or a new kind) starts one."""
    if not is_bio(tags):
        return []
    labels, previous = [], None
    for tag in tags:
        kind = None if tag == "O" else tag[2:]
        if kind and not (kind == previous and tag[0] in "IEL"):
            labels.append(kind)
        previous = kind
    return labels


def _check_page(page, task: str, expected: dict) -> None:
    """The page shows what /predict answered: the tags under the tokens (and the entities), the
    label and a bar per class, the output and its n-best list."""
    if task == "tagging":
        shown = page.eval_on_selector_all(".token", "ns => ns.map(n => [n.children[0].textContent, n.dataset.tag])")
        assert shown == [list(pair) for pair in zip(expected["tokens"], expected["tags"])]
        entities = page.eval_on_selector_all("mark.entity", "ns => ns.map(n => n.dataset.label)")
        assert entities == _entities(expected["tags"])
    elif task == "classification":
        assert page.inner_text(".label-big") == expected["label"]
        bars = page.eval_on_selector_all(".bar-row", "ns => ns.map(n => n.dataset.class)")
        assert sorted(bars) == sorted(expected["probabilities"])
    else:
        assert page.inner_text(".output") == expected["output"]
        nbest = page.eval_on_selector_all("ol.nbest li", "ns => ns.map(n => n.firstChild.textContent)")
        assert nbest == [item["output"] for item in expected["nbest"]]
