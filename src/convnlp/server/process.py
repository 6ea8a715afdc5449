"""A `convnlp serve` process of one's own, on a free port: started with ``port=0``, its address
read from the line it prints, stopped with SIGTERM (the tests and scripts/serve_load.py use it).

    with ServerProcess(Path("."), "checkpoint=outputs/train/<run>", "threads=1") as server:
        server.predict(["The cat sat ."])
        server.stop()      # SIGTERM; the exit status
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ADDRESS = re.compile(r" at http://(127\.0\.0\.1|\[::1\]|[\w.]+):(\d+) \(")


class ServerProcess:
    """``convnlp serve port=0 <args>`` run in ``cwd``, ready to answer (``timeout``: to start)."""

    def __init__(self, cwd: Path, *args: str, timeout: float = 120.0, env: dict | None = None):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "convnlp", "serve", "port=0", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        try:
            self._wait(deadline)
        except BaseException:
            self.process.kill()
            self.process.wait(10)
            self._reader.join(5)
            raise

    def _wait(self, deadline: float) -> None:
        """Until the server prints its address and answers ``GET /health``."""
        while not (found := next((m for line in self.lines if (m := ADDRESS.search(line))), None)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(self._failed("did not start"))
            time.sleep(0.05)
        self.host, self.port = found.group(1).strip("[]"), int(found.group(2))
        self.url = f"http://{found.group(1)}:{self.port}"
        while True:  # the address is printed before uvicorn accepts: wait for its first answer
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(self._failed("did not answer GET /health"))
            time.sleep(0.05)

    def _failed(self, what: str) -> str:
        time.sleep(0.2)  # its last lines
        return f"convnlp serve {what} (exit status {self.process.poll()}):\n" + "".join(self.lines)

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, decoded JSON or text) of one request on a new connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read().decode()
            kind = response.getheader("content-type", "")
            return response.status, json.loads(data) if kind.startswith("application/json") else data
        finally:
            connection.close()

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, payload) -> tuple[int, object]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def predict(self, texts: list[str], **extra) -> list[dict]:
        status, answer = self.post("/predict", {"texts": texts, **extra})
        assert status == 200, (status, answer)
        return answer["predictions"]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# Chromium's flags for a headless run here (tests/test_serve.py, scripts/serve_screenshots.py): no
# sandbox for root, no GPU, nothing fetched from outside (this machine's network is closed)
BROWSER_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
