"""The download path of named datasets, against a real HTTP server on 127.0.0.1."""

import http.server
import shutil
import threading
from functools import partial

import pytest

from convnlp.data import download, ud_ewt
from convnlp.errors import UserError


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_ud_ewt_downloads_into_cache_and_checks_sha256(server, shared_datasets, tmp_path, monkeypatch):
    root, base = server
    monkeypatch.delenv("CONVNLP_DATA_DIR", raising=False)
    shutil.copy(shared_datasets / "ud_en_ewt" / "dev.conllu", root / "en_ewt-ud-dev.conllu")
    cache = tmp_path / "cache"
    path = ud_ewt.resolve("validation", None, base + "/en_ewt-ud-{split}.conllu", str(cache))
    assert path == cache / "ud_en_ewt" / "en_ewt-ud-dev.conllu"
    assert download.sha256_of(path) == ud_ewt.FILES["validation"][1]
    (root / "en_ewt-ud-dev.conllu").unlink()  # a second call uses the verified cached copy
    assert ud_ewt.resolve("validation", None, base + "/en_ewt-ud-{split}.conllu", str(cache)) == path


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    root, base = server
    (root / "f.txt").write_text("tampered\n")
    target = tmp_path / "cache" / "f.txt"
    with pytest.raises(UserError, match="checksum mismatch.*the file was not kept"):
        download.fetch(base + "/f.txt", target, sha256="0" * 64)
    assert list(target.parent.iterdir()) == []


def test_http_error_is_one_line(server, tmp_path):
    _, base = server
    with pytest.raises(UserError, match=r"/missing.txt: download failed: HTTP 404"):
        download.fetch(base + "/missing.txt", tmp_path / "m.txt", sha256=None)
    assert not (tmp_path / "m.txt").exists()


def test_cache_dir_setting_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVNLP_CACHE_DIR", str(tmp_path / "env"))
    assert download.cache_dir("/explicit") == download.cache_dir("/explicit")
    assert download.cache_dir(None) == tmp_path / "env"
    monkeypatch.delenv("CONVNLP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir(None) == tmp_path / "xdg" / "convnlp"
