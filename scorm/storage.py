"""Where package files live: the "scorm" storage (a folder by default, S3 in
production), one immutable folder per content hash shared by every tenant."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage, storages

# Written last: its presence says every file of the package is stored. A package
# whose marker is missing (an import that died half way) is written again in full.
_MARKER_DIR = "scorm/_complete/"


def package_storage() -> Storage:
    if "scorm" in settings.STORAGES:
        return storages["scorm"]
    return default_storage


def package_root(content_hash: str) -> str:
    return f"scorm/{content_hash}/"


def marker_name(content_hash: str) -> str:
    return f"{_MARKER_DIR}{content_hash}.json"


def is_stored(content_hash: str) -> bool:
    return package_storage().exists(marker_name(content_hash))


class ChunkReader(io.RawIOBase):
    """A read-only, unseekable file over an iterator of bytes (a zip entry being
    decompressed), so storages stream it without holding it in memory."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def write_exact(storage: Storage, name: str, reader: io.RawIOBase, size: int) -> None:
    """Stores ``reader`` under exactly ``name``. A file left there by an import that
    died half way has the same bytes (same content hash) and is replaced."""
    if storage.exists(name):
        storage.delete(name)
    content = File(io.BufferedReader(reader, 1024 * 1024), name=name)
    content.size = size
    stored = storage.save(name, content)
    if stored != name:  # another import of the same zip won a race for this name
        storage.delete(stored)


def write_marker(content_hash: str, listing: dict[str, int]) -> None:
    storage = package_storage()
    name = marker_name(content_hash)
    body = json.dumps({"files": listing}, sort_keys=True).encode()
    if storage.exists(name):
        storage.delete(name)
    storage.save(name, File(io.BytesIO(body), name=name))
