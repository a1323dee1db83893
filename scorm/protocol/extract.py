"""Safe, streaming reading of a SCORM package zip (no Django).

``open_package`` checks the whole central directory before anything is read:
entry count, names (traversal, absolute, backslash and drive-letter paths,
control characters, duplicates also when case-folded, a file used as a folder),
symlinks and other special entries, encryption, compression methods, the
declared sizes against a total and a ratio limit, and zips nested inside (their
declared sizes count against the same limits). A rejection names the entry.

The declared sizes can be trusted as an upper bound: ``zipfile`` never returns
more bytes than an entry's ``file_size`` (it cuts the stream and fails the CRC
check), so a bomb that lies about its size fails while it is being read, which
``iter_chunks`` turns into a rejection naming the entry.
"""

from __future__ import annotations

import lzma
import posixpath
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from scorm.protocol.errors import PackageRejected

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
CHUNK = 256 * KIB

_SUPPORTED_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_READ_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """What a package may contain. Defaults fit real courses (video-heavy ones are a
    few hundred MB) and refuse bombs; settings may change them (SCORM_* in config)."""

    max_package_bytes: int = 1 * GIB  # the zip as uploaded
    max_total_bytes: int = 2 * GIB  # all entries uncompressed, nested zips' entries included
    max_entries: int = 20_000  # nested zips' entries included
    max_ratio: int = 100  # uncompressed / compressed, per entry and for the whole package
    ratio_floor_bytes: int = 1 * MIB  # below this size a high ratio harms nobody (a file of spaces)
    max_manifest_bytes: int = 4 * MIB
    max_nesting: int = 2  # a zip inside a zip inside the package, no deeper


@dataclass(frozen=True)
class Entry:
    """One regular file of the package: its normalised posix path and its zip record."""

    path: str
    size: int
    compressed_size: int
    info: zipfile.ZipInfo


def _reject_name(code: str, reason: str, name: str) -> PackageRejected:
    return PackageRejected(code, f"{reason}: {name!r}", entry=name)


def check_entry_name(raw: str) -> str:
    """The entry's path, normalised, or PackageRejected naming it. Directories keep no
    trailing slash."""
    if not raw:
        raise PackageRejected("empty_name", "The package has an entry without a name.", entry=raw)
    if _CONTROL.search(raw):
        raise _reject_name("control_character", "An entry's name contains a control character", raw)
    if "\\" in raw:
        raise _reject_name("backslash_path", "An entry's name uses a backslash (a Windows path)", raw)
    if _DRIVE.match(raw):
        raise _reject_name("drive_path", "An entry's name starts with a drive letter", raw)
    if raw.startswith("/"):
        raise _reject_name("absolute_path", "An entry's name is an absolute path", raw)
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _reject_name("path_traversal", "An entry's name climbs out of the package with '..'", raw)
    if not parts:
        raise _reject_name("empty_name", "An entry's name is empty once normalised", raw)
    return "/".join(parts)


def _entry_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "symlink"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special"
    if info.is_dir() or kind == stat.S_IFDIR:
        return "dir"
    return "file"


class _Budget:
    """Entry count and uncompressed bytes, shared by a package and the zips inside it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.total = 0

    def add(self, name: str, size: int) -> None:
        self.entries += 1
        self.total += size
        if self.entries > self.limits.max_entries:
            raise PackageRejected(
                "too_many_entries",
                f"The package has more than {self.limits.max_entries} entries (counting zips inside it); "
                f"stopped at {name!r}.",
                entry=name,
            )
        if self.total > self.limits.max_total_bytes:
            raise PackageRejected(
                "too_large_uncompressed",
                f"The package unpacks to more than {_human(self.limits.max_total_bytes)} "
                f"(counting zips inside it); stopped at {name!r}.",
                entry=name,
            )


def _human(size: int) -> str:
    for unit, scale in (("GB", GIB), ("MB", MIB), ("KB", KIB)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def _check_ratio(limits: Limits, name: str, size: int, compressed: int, *, nested: bool = False) -> None:
    if size < limits.ratio_floor_bytes:
        return
    if size > limits.max_ratio * max(compressed, 1):
        where = "the zip inside the package at" if nested else "the entry"
        raise PackageRejected(
            "compression_ratio",
            f"Compression ratio too high for {where} {name!r}: {_human(size)} from {_human(compressed)} "
            f"(more than {limits.max_ratio} to 1; a zip bomb?).",
            entry=name,
        )


def _scan(zf: zipfile.ZipFile, limits: Limits, budget: _Budget, *, prefix: str, depth: int) -> list[Entry]:
    """Checks every record of ``zf``; returns its regular files. ``prefix`` names the
    nested zip in messages ("course/extra.zip!")."""
    seen: dict[str, str] = {}
    folded: dict[str, str] = {}
    files: list[Entry] = []
    folders: set[str] = set()
    for info in zf.infolist():
        shown = prefix + info.orig_filename
        try:
            path = check_entry_name(info.orig_filename)
        except PackageRejected as exc:
            raise PackageRejected(
                exc.code, exc.reason.replace(repr(info.orig_filename), repr(shown)), entry=shown
            ) from None
        if info.flag_bits & 0x1:
            raise _reject_name(
                "encrypted", "An entry is encrypted (password-protected zips cannot be imported)", shown
            )
        kind = _entry_kind(info)
        if kind == "symlink":
            raise _reject_name("symlink", "An entry is a symbolic link", shown)
        if kind == "special":
            raise _reject_name("special_file", "An entry is not a regular file or folder", shown)
        if kind == "file" and info.compress_type not in _SUPPORTED_METHODS:
            raise _reject_name(
                "compression_method",
                f"An entry uses compression method {info.compress_type}, which cannot be read",
                shown,
            )
        if path in seen:
            raise _reject_name("duplicate_name", "Two entries have the same name", shown)
        key = path.casefold()
        if key in folded:
            raise PackageRejected(
                "duplicate_name",
                f"Two entries differ only in upper/lower case: {prefix + folded[key]!r} and {shown!r}.",
                entry=shown,
            )
        seen[path] = kind
        folded[key] = path
        budget.add(shown, info.file_size)
        if kind == "dir":
            folders.add(path)
            continue
        _check_ratio(limits, shown, info.file_size, info.compress_size)
        files.append(Entry(path=path, size=info.file_size, compressed_size=info.compress_size, info=info))
        parent = posixpath.dirname(path)
        while parent:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    for entry in files:
        if entry.path in folders:
            shown = prefix + entry.path
            raise _reject_name("file_and_folder", "An entry is both a file and a folder", shown)
    total = sum(entry.size for entry in files)
    compressed = sum(entry.compressed_size for entry in files)
    if total >= limits.ratio_floor_bytes and total > limits.max_ratio * max(compressed, 1):
        raise PackageRejected(
            "compression_ratio",
            f"Compression ratio too high for the package{' ' + prefix.rstrip('!') if prefix else ''}: "
            f"{_human(total)} from {_human(compressed)} (more than {limits.max_ratio} to 1; a zip bomb?).",
            entry=prefix.rstrip("!") or None,
        )
    for entry in files:
        if entry.path.casefold().endswith(".zip"):
            _scan_nested(zf, entry, limits, budget, prefix=prefix, depth=depth + 1)
    return files


def _scan_nested(
    zf: zipfile.ZipFile, entry: Entry, limits: Limits, budget: _Budget, *, prefix: str, depth: int
) -> None:
    shown = prefix + entry.path
    with tempfile.SpooledTemporaryFile(max_size=8 * MIB) as spool:
        for chunk in _chunks(zf, entry, shown):
            spool.write(chunk)
        spool.seek(0)
        try:
            inner = zipfile.ZipFile(spool)
        except zipfile.BadZipFile:
            return  # a file named .zip that is not one: plain content
        with inner:
            if depth > limits.max_nesting:
                raise _reject_name(
                    "nested_too_deep",
                    f"Zips nested more than {limits.max_nesting} deep inside the package",
                    shown,
                )
            declared = sum(info.file_size for info in inner.infolist())
            # The nested zip's content against the bytes it took in the package: a
            # zip of zips multiplies ratios that look harmless one level at a time.
            _check_ratio(limits, shown, declared, entry.compressed_size, nested=True)
            _scan(inner, limits, budget, prefix=shown + "!", depth=depth)


def _chunks(zf: zipfile.ZipFile, entry: Entry, shown: str) -> Iterator[bytes]:
    try:
        with zf.open(entry.info) as stream:
            while chunk := stream.read(CHUNK):
                yield chunk
    except _READ_ERRORS as exc:
        # A CRC mismatch (the size lie of a bomb, or a damaged file) is a BadZipFile;
        # broken compressed data is a zlib/lzma error or an OSError (bz2).
        raise PackageRejected(
            "corrupt_entry", f"The entry {shown!r} cannot be read: {exc}.", entry=shown
        ) from exc


class PackageArchive:
    """A checked package zip. Read entries with ``read`` (small files, bounded) or
    ``iter_chunks`` (streaming)."""

    def __init__(self, zf: zipfile.ZipFile, entries: list[Entry], limits: Limits) -> None:
        self._zf = zf
        self.limits = limits
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._by_path = {entry.path: entry for entry in entries}
        self._by_folded = {entry.path.casefold(): entry for entry in entries}

    def close(self) -> None:
        self._zf.close()

    def __enter__(self) -> PackageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)

    def get(self, path: str) -> Entry | None:
        return self._by_path.get(path)

    def get_folded(self, path: str) -> Entry | None:
        """The entry whose name matches ``path`` ignoring case (for a hint in a message)."""
        return self._by_folded.get(path.casefold())

    def iter_chunks(self, entry: Entry) -> Iterator[bytes]:
        yield from _chunks(self._zf, entry, entry.path)

    def read(self, entry: Entry, max_bytes: int) -> bytes:
        if entry.size > max_bytes:
            raise PackageRejected(
                "entry_too_large",
                f"{entry.path!r} is {_human(entry.size)}; at most {_human(max_bytes)} is allowed.",
                entry=entry.path,
            )
        return b"".join(self.iter_chunks(entry))


def _declared_entry_count(fileobj: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record declares (zip64 too), or
    None when there is no such record (zipfile then says it is not a zip)."""
    try:
        # zipfile's own EOCD reader (private, but unchanged since Python 2): it finds
        # the record behind an archive comment and follows the zip64 locator.
        record = zipfile._EndRecData(fileobj)  # type: ignore[attr-defined]
    except OSError:
        return None
    return None if record is None else int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def open_package(
    fileobj: IO[bytes], limits: Limits | None = None, *, size: int | None = None
) -> PackageArchive:
    """Opens and checks a package zip (seekable ``fileobj``); PackageRejected when
    anything in it must not be imported. Nothing is extracted here."""
    limits = limits or Limits()
    if size is None:
        fileobj.seek(0, 2)
        size = fileobj.tell()
    fileobj.seek(0)
    if size > limits.max_package_bytes:
        raise PackageRejected(
            "package_too_large",
            f"The package is {_human(size)}; at most {_human(limits.max_package_bytes)} can be imported.",
        )
    declared = _declared_entry_count(fileobj)
    if declared is not None and declared > limits.max_entries:
        # Checked before zipfile reads the central directory: it keeps one ZipInfo per
        # record in memory, and a small zip can declare millions of them.
        raise PackageRejected(
            "too_many_entries",
            f"The package has {declared} entries; at most {limits.max_entries} are allowed.",
        )
    fileobj.seek(0)
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise PackageRejected("not_a_zip", f"The file is not a zip archive ({exc}).") from exc
    try:
        entries = _scan(zf, limits, _Budget(limits), prefix="", depth=0)
    except BaseException:
        zf.close()
        raise
    return PackageArchive(zf, entries, limits)
