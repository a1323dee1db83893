"""Reading a OneRoster CSV package (1.1 or 1.2; a folder or a zip), one row at a time.

Nothing is loaded whole: each file is streamed through ``csv.reader`` and turned
into ``Record`` values, so a district of any size reads in constant memory.
Headers are matched leniently (case, spaces, a UTF-8 BOM, unknown extra columns),
because SIS exports differ in exactly those ways; a missing required column is
an error on line 1 of that file.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from oneroster.protocol.records import (
    ACTIVE,
    ENTITIES,
    Record,
    RosterProtocolError,
    RowError,
    check_record,
    check_user_role,
    derived_user_records,
    normalise_status,
    parse_bool,
    parse_date,
    split_list,
)

FILES: dict[str, str] = {
    "org": "orgs.csv",
    "academicSession": "academicSessions.csv",
    "course": "courses.csv",
    "class": "classes.csv",
    "user": "users.csv",
    "role": "roles.csv",
    "enrollment": "enrollments.csv",
}
# The manifest names files without ".csv" (file.orgs, file.academicSessions, ...).
MANIFEST_KEYS = {entity: "file." + name[: -len(".csv")] for entity, name in FILES.items()}

HEADERS_1_1: dict[str, tuple[str, ...]] = {
    "org": ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"),
    "academicSession": (
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "type",
        "startDate",
        "endDate",
        "parentSourcedId",
        "schoolYear",
    ),
    "course": (
        "sourcedId",
        "status",
        "dateLastModified",
        "schoolYearSourcedId",
        "title",
        "courseCode",
        "grades",
        "orgSourcedId",
        "subjects",
        "subjectCodes",
    ),
    "class": (
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "grades",
        "courseSourcedId",
        "classCode",
        "classType",
        "location",
        "schoolSourcedId",
        "termSourcedIds",
        "subjects",
        "subjectCodes",
        "periods",
    ),
    "user": (
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "orgSourcedIds",
        "role",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
    ),
    "enrollment": (
        "sourcedId",
        "status",
        "dateLastModified",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
        "beginDate",
        "endDate",
    ),
}
HEADERS_1_2: dict[str, tuple[str, ...]] = {
    **HEADERS_1_1,
    "user": (
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
        "userMasterIdentifier",
        "resourceSourcedIds",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
    ),
    "role": (
        "sourcedId",
        "status",
        "dateLastModified",
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ),
}
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "org": ("sourcedId", "name", "type"),
    "academicSession": ("sourcedId", "title", "type", "startDate", "endDate"),
    "course": ("sourcedId", "title", "orgSourcedId"),
    "class": ("sourcedId", "title", "courseSourcedId", "schoolSourcedId", "termSourcedIds"),
    "user": ("sourcedId", "givenName", "familyName"),
    "role": ("sourcedId", "userSourcedId", "role", "orgSourcedId"),
    "enrollment": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
}


def headers_for(version: str) -> dict[str, tuple[str, ...]]:
    return HEADERS_1_2 if version == "1.2" else HEADERS_1_1


@dataclass
class Manifest:
    version: str
    modes: dict[str, str]  # entity -> "bulk" | "delta" | "absent"
    properties: dict[str, str] = field(default_factory=dict)

    def any_delta(self) -> bool:
        return any(mode == "delta" for mode in self.modes.values())


ENCODING_SCAN_CHUNK = 1 << 20


class NotUtf8(RosterProtocolError):
    """A file of the package is not UTF-8 (OneRoster CSV 1.1 section 2.1: UTF-8 only)."""

    def __init__(self, name: str, byte: int, line: int) -> None:
        super().__init__(f"file {name} is not UTF-8 (byte 0x{byte:02x} at line {line})")
        self.name = name
        self.byte = byte
        self.line = line


def first_non_utf8(raw: IO[bytes]) -> tuple[int, int] | None:
    """(byte, line) of the first byte of ``raw`` that is not UTF-8, or None.

    Reads in chunks, so a file of any size is checked in constant memory; the line
    is the physical line a person finds in an editor (a UTF-8 sequence never holds
    a newline byte, so counting b"\n" before the bad byte is exact)."""
    carry = b""
    lines_before = 0
    while True:
        chunk = raw.read(ENCODING_SCAN_CHUNK)
        data = carry + chunk
        if not data:
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A sequence cut by the chunk boundary is finished by the next chunk.
            if chunk and exc.reason == "unexpected end of data":
                valid, carry = data[: exc.start], data[exc.start :]
                lines_before += valid.count(b"\n")
                continue
            return data[exc.start], lines_before + data.count(b"\n", 0, exc.start) + 1
        if not chunk:
            return None
        lines_before += data.count(b"\n")
        carry = b""


@dataclass(frozen=True)
class ZipSummary:
    entries: int
    unpacked_bytes: int
    csv_files: tuple[str, ...]


def _unsafe_member(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\"))
        or "\0" in name
        or (len(name) > 1 and name[1] == ":")  # a Windows drive (C:...)
        or any(part == ".." for part in parts)
    )


def check_zip(raw: BinaryIO, *, max_entries: int, max_unpacked_bytes: int) -> ZipSummary:
    """Refuse a zip that could hurt whoever unpacks it or that holds no roster.

    The hub never unpacks to disk (members are streamed), but a zip is also a file a
    person may open again later: names that climb out of the folder (``../``, an
    absolute path, a drive), more entries than a roster has, or more unpacked bytes
    than allowed (a zip bomb) are refused outright. zipfile stops reading a member at
    its declared size, so the declared sizes are the ones that count."""
    try:
        archive = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError):
        raise RosterProtocolError("The file is not a zip file.") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise RosterProtocolError(
                f"The zip holds {len(infos)} entries; a roster zip may hold at most {max_entries}."
            )
        for info in infos:
            if _unsafe_member(info.filename):
                raise RosterProtocolError(
                    f"The zip entry {info.filename!r} points outside the zip's folder; it is refused."
                )
            if info.flag_bits & 0x1:
                raise RosterProtocolError(f"The zip entry {info.filename!r} is password-protected.")
        unpacked = sum(info.file_size for info in infos)
        if unpacked > max_unpacked_bytes:
            raise RosterProtocolError(
                f"The zip unpacks to {unpacked} bytes; at most {max_unpacked_bytes} are allowed."
            )
        known = {name.lower() for name in FILES.values()}
        found = sorted(
            {
                info.filename.rsplit("/", 1)[-1].lower()
                for info in infos
                if not info.is_dir() and info.filename.rsplit("/", 1)[-1].lower() in known
            }
        )
        if not found:
            raise RosterProtocolError(
                "The zip holds no OneRoster CSV files (orgs.csv, users.csv, classes.csv, ...)."
            )
        return ZipSummary(entries=len(infos), unpacked_bytes=unpacked, csv_files=tuple(found))


class _Package:
    """A folder or a zip; files are found by name, case-insensitively, at the top
    or inside one folder (zips made by hand often wrap everything in a folder).
    A zip may also be an open binary file (an upload read from file storage)."""

    def __init__(self, path: Path | BinaryIO) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if not isinstance(path, Path):
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise RosterProtocolError("The uploaded file is not a zip file.") from None
            self._index_zip(self._zip)
        elif path.is_dir():
            for child in path.iterdir():
                if child.is_file():
                    self._names[child.name.lower()] = str(child)
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self._index_zip(self._zip)
        else:
            raise RosterProtocolError(f"{path} is neither a folder nor a zip file.")

    def _index_zip(self, archive: zipfile.ZipFile) -> None:
        for info in archive.infolist():
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1].lower()
            self._names.setdefault(base, info.filename)

    def display_name(self, name: str) -> str:
        """How a person finds the file: its name in the zip, or in the folder."""
        target = self._names[name.lower()]
        return target if self._zip is not None else Path(target).name

    def names(self) -> list[str]:
        return sorted(self._names)

    @contextmanager
    def open_binary(self, name: str) -> Iterator[IO[bytes]]:
        target = self._names[name.lower()]
        if self._zip is not None:
            with self._zip.open(target) as raw:
                yield raw
        else:
            with open(target, "rb") as handle:
                yield handle

    def encoding_error(self, name: str) -> NotUtf8 | None:
        with self.open_binary(name) as raw:
            found = first_non_utf8(raw)
        return None if found is None else NotUtf8(self.display_name(name), *found)

    def has(self, name: str) -> bool:
        return name.lower() in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[str]]:
        target = self._names[name.lower()]
        if self._zip is not None:
            with self._zip.open(target) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        else:
            with open(target, encoding="utf-8-sig", newline="") as handle:
                yield handle

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _norm(header: str) -> str:
    return header.strip().strip("\ufeff").replace(" ", "").replace("_", "").lower()


class CsvPackage:
    """One OneRoster CSV package. ``records()`` streams every row of every file."""

    def __init__(self, path: str | Path | BinaryIO, *, delta: bool | None = None) -> None:
        self.package = _Package(path if not isinstance(path, str) else Path(path))
        self.manifest = self._read_manifest(delta)

    def _not_utf8(self, name: str, exc: UnicodeDecodeError) -> RosterProtocolError:
        # The text reader decodes ahead in blocks, so its error cannot say where the
        # byte is; one pass over the raw bytes can.
        return self.package.encoding_error(name) or RosterProtocolError(f"file {name} is not UTF-8 ({exc})")

    def check_encoding(self) -> None:
        """Raise ``NotUtf8`` for the first file this package would read that is not UTF-8."""
        names = ["manifest.csv"] if self.package.has("manifest.csv") else []
        names += [FILES[e] for e, mode in self.manifest.modes.items() if mode != "absent"]
        for name in names:
            if (problem := self.package.encoding_error(name)) is not None:
                raise problem

    def close(self) -> None:
        self.package.close()

    def __enter__(self) -> CsvPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> str:
        return self.manifest.version

    def _read_manifest(self, delta: bool | None) -> Manifest:
        props: dict[str, str] = {}
        if self.package.has("manifest.csv"):
            with self.package.open("manifest.csv") as handle:
                reader = csv.reader(handle)
                try:
                    header = next(reader, None)
                    if header is None or [_norm(h) for h in header[:2]] != ["propertyname", "value"]:
                        raise RosterProtocolError("manifest.csv:1: header must be propertyName,value")
                    for row in reader:
                        if len(row) >= 2 and row[0].strip():
                            props[row[0].strip()] = row[1].strip()
                except UnicodeDecodeError as exc:
                    raise self._not_utf8("manifest.csv", exc) from None
        version = props.get("oneroster.version", "")
        if not version:
            # No manifest (or no version in it): 1.2 is the layout with roles.csv.
            version = "1.2" if self.package.has("roles.csv") else "1.1"
        if version not in ("1.1", "1.2"):
            raise RosterProtocolError(f"manifest.csv: oneroster.version {version!r} is not 1.1 or 1.2")
        default_mode = "delta" if delta else "bulk"
        modes: dict[str, str] = {}
        for entity, filename in FILES.items():
            if entity == "role" and version == "1.1":
                continue
            mode = props.get(MANIFEST_KEYS[entity], "").lower()
            if mode not in ("bulk", "delta", "absent"):
                mode = default_mode if self.package.has(filename) else "absent"
            if mode != "absent" and not self.package.has(filename):
                raise RosterProtocolError(f"manifest.csv says {filename} is {mode}, but the file is missing")
            if delta is True and mode == "bulk":
                mode = "delta"  # the operator asked for a delta: never deactivate by absence
            modes[entity] = mode
        return Manifest(version=version, modes=modes, properties=props)

    def file_errors(self) -> list[RowError]:
        return []

    def records(self) -> Iterator[Record]:
        for entity in ENTITIES:
            if entity in ("agent",) or self.manifest.modes.get(entity, "absent") == "absent":
                continue
            yield from self._file_records(entity)

    def _file_records(self, entity: str) -> Iterator[Record]:
        filename = FILES[entity]
        delta = self.manifest.modes[entity] == "delta"
        version = self.version
        with self.package.open(filename) as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
            except UnicodeDecodeError as exc:
                # Fatal for the whole run: every row after the bad byte is unreadable.
                raise self._not_utf8(filename, exc) from None
            except csv.Error as exc:
                yield _file_error(entity, filename, 1, f"cannot read the header: {exc}")
                return
            if header is None:
                yield _file_error(entity, filename, 1, "the file is empty (no header row)")
                return
            known = {_norm(h): h for h in headers_for(version)[entity]}
            columns = [known.get(_norm(h), "") for h in header]
            missing = [c for c in REQUIRED_COLUMNS[entity] if c not in columns]
            if missing:
                yield _file_error(entity, filename, 1, f"missing required column(s): {', '.join(missing)}")
                return
            width = len(header)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise self._not_utf8(filename, exc) from None
                except csv.Error as exc:
                    yield _file_error(entity, filename, reader.line_num + 1, f"unreadable row: {exc}")
                    return
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank lines are harmless
                values = {col: value.strip() for col, value in zip(columns, row, strict=False) if col}
                record = row_to_record(
                    entity, values, version=version, delta=delta, location=filename, line=line
                )
                if len(row) != width:
                    record.error(f"row has {len(row)} fields, the header has {width}")
                if entity == "user" and version == "1.1":
                    check_user_role(record, values.get("role", ""), version=version)
                yield record
                if entity == "user" and version == "1.1":
                    yield from derived_user_records(
                        record,
                        role=values.get("role", ""),
                        orgs=split_list(values.get("orgSourcedIds")),
                        agents=split_list(values.get("agentSourcedIds")),
                        version=version,
                    )
                elif entity == "user":
                    yield from derived_user_records(
                        record, role="", orgs=[], agents=split_list(values.get("agentSourcedIds"))
                    )


def _file_error(entity: str, filename: str, line: int, message: str) -> Record:
    record = Record(entity=entity, sourced_id="", status=ACTIVE, data={}, location=filename, line=line)
    record.error(message)
    return record


def row_to_record(
    entity: str, v: dict[str, str], *, version: str, delta: bool, location: str, line: int | None
) -> Record:
    """Turn one CSV row (column -> text) into a checked ``Record``."""
    record = Record(
        entity=entity,
        sourced_id=v.get("sourcedId", ""),
        status=ACTIVE,
        data={},
        location=location,
        line=line,
        date_last_modified=v.get("dateLastModified", ""),
    )
    normalise_status(record, v.get("status", ""), delta=delta)
    try:
        record.data = _data_for(entity, v, version)
    except ValueError as exc:
        record.error(str(exc))
        return record
    return check_record(record, version=version)


def _date_field(v: dict[str, str], name: str) -> str:
    try:
        return parse_date(v.get(name))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _data_for(entity: str, v: dict[str, str], version: str) -> dict[str, Any]:
    if entity == "org":
        return {
            "name": v.get("name", ""),
            "type": v.get("type", ""),
            "identifier": v.get("identifier", ""),
            "parent": v.get("parentSourcedId", ""),
        }
    if entity == "academicSession":
        return {
            "title": v.get("title", ""),
            "type": v.get("type", ""),
            "startDate": _date_field(v, "startDate"),
            "endDate": _date_field(v, "endDate"),
            "parent": v.get("parentSourcedId", ""),
            "schoolYear": v.get("schoolYear", ""),
        }
    if entity == "course":
        return {
            "title": v.get("title", ""),
            "courseCode": v.get("courseCode", ""),
            "org": v.get("orgSourcedId", ""),
            "schoolYear": v.get("schoolYearSourcedId", ""),
        }
    if entity == "class":
        return {
            "title": v.get("title", ""),
            "classCode": v.get("classCode", ""),
            "classType": v.get("classType", ""),
            "course": v.get("courseSourcedId", ""),
            "school": v.get("schoolSourcedId", ""),
            "terms": split_list(v.get("termSourcedIds")),
        }
    if entity == "user":
        try:
            enabled = parse_bool(v.get("enabledUser"), default=True)
        except ValueError as exc:
            raise ValueError(f"enabledUser: {exc}") from None
        data: dict[str, Any] = {
            "givenName": v.get("preferredGivenName") or v.get("givenName", ""),
            "familyName": v.get("preferredFamilyName") or v.get("familyName", ""),
            "middleName": v.get("middleName", ""),
            "email": v.get("email", ""),
            "username": v.get("username", ""),
            "identifier": v.get("identifier", ""),
            "enabledUser": enabled,
        }
        if version == "1.2":
            data["primaryOrg"] = v.get("primaryOrgSourcedId", "")
        return data
    if entity == "role":
        return {
            "user": v.get("userSourcedId", ""),
            "role": v.get("role", ""),
            "org": v.get("orgSourcedId", ""),
            "roleType": v.get("roleType", "") or "primary",
        }
    if entity == "enrollment":
        try:
            primary = parse_bool(v.get("primary"), default=False)
        except ValueError as exc:
            raise ValueError(f"primary: {exc}") from None
        return {
            "class": v.get("classSourcedId", ""),
            "user": v.get("userSourcedId", ""),
            "school": v.get("schoolSourcedId", ""),
            "role": v.get("role", ""),
            "primary": primary,
            "beginDate": _date_field(v, "beginDate"),
            "endDate": _date_field(v, "endDate"),
        }
    raise ValueError(f"unknown entity {entity}")
