"""Download a file into a cache, checking its SHA-256; never leaves a partial file behind."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from convnlp.errors import UserError

log = logging.getLogger(__name__)


def cache_dir(configured: str | None = None) -> Path:
    """cache_dir setting, else $CONVNLP_CACHE_DIR, else $XDG_CACHE_HOME/convnlp or ~/.cache/convnlp."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("CONVNLP_CACHE_DIR"):
        return Path(os.environ["CONVNLP_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convnlp"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, sha256: str | None, timeout: float = 60.0, local: str = "") -> Path:
    """Return ``target``, downloading ``url`` there first unless a verified copy exists. ``local``:
    where the files could be instead (a failed download says so)."""
    hint = f"; without a network, put {local} in $CONVNLP_DATA_DIR (or data.data_dir)" if local else ""
    if target.is_file() and (sha256 is None or sha256_of(target) == sha256):
        return target
    log.info("downloading %s -> %s", url, target)
    try:
        with atomic_write(target) as out, urllib.request.urlopen(url, timeout=timeout) as response:
            digest = hashlib.sha256()
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise UserError(
                    f"{url}: checksum mismatch (expected sha256 {sha256}, got {digest.hexdigest()}); "
                    "the file was not kept"
                )
    except urllib.error.HTTPError as e:
        raise UserError(f"{url}: download failed: HTTP {e.code} {e.reason}{hint}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"{url}: download failed: {getattr(e, 'reason', e)}{hint}") from None
    return target


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_write(target: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``target`` only if the block ends without an error; a reader
    never sees half a file, and a failed write leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
