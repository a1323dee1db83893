"""Builders of SCORM package zips for the import tests: a valid minimal package and
hostile variants of it (each differs from the valid one by exactly one defect)."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Iterable

MANIFEST_12 = """<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="generated.course" version="1"
          xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
          xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2">
  <metadata><schema>ADL SCORM</schema><schemaversion>1.2</schemaversion></metadata>
  <organizations default="org">
    <organization identifier="org">
      <title>{title}</title>
      <item identifier="item_1" identifierref="res_1"><title>Lesson</title></item>
    </organization>
  </organizations>
  <resources>
    <resource identifier="res_1" type="webcontent" adlcp:scormtype="sco" href="index.html">
      <file href="index.html"/>
    </resource>
  </resources>
</manifest>
"""

LAUNCH = b"<!doctype html><title>Lesson</title><p>Hello</p>"


def manifest(title: str = "Generated course", *, doctype: str = "") -> bytes:
    text = MANIFEST_12.format(title=title)
    if doctype:
        text = text.replace("<manifest ", doctype + "\n<manifest ", 1)
    return text.encode()


Entry = tuple[str | zipfile.ZipInfo, bytes]


def build(entries: Iterable[Entry], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, data)
            else:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = compression
                zf.writestr(info, data)
    return buffer.getvalue()


def valid_entries(title: str = "Generated course") -> list[Entry]:
    return [("imsmanifest.xml", manifest(title)), ("index.html", LAUNCH)]


def valid(title: str = "Generated course") -> bytes:
    return build(valid_entries(title))


def with_entry(name: str | zipfile.ZipInfo, data: bytes = b"x", **kwargs: int) -> bytes:
    return build([*valid_entries(), (name, data)], **kwargs)


def symlink(name: str = "passwd", target: bytes = b"/etc/passwd") -> bytes:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = (0o120777 << 16) & 0xFFFF0000
    return with_entry(info, target)


def encrypted(name: str = "secret.html") -> bytes:
    # The traditional PKWARE encryption flag (APPNOTE 4.4.4 bit 0) is what a reader
    # sees first; the bytes after it do not matter because nothing may read them.
    data = with_entry(name, b"\x00" * 64)
    return patch_headers(data, name, local_offset=6, central_offset=8, fmt="<H", value=0x1)


def noise(size: int, seed: int = 1) -> bytes:
    """``size`` bytes of hex digits that hardly compress (about 2 to 1), reproducibly."""
    return random.Random(seed).randbytes(size // 2 + 1).hex().encode()[:size]


def zeros(size: int) -> bytes:
    return b"\x00" * size


def ratio_bomb(size: int = 20 * 1024 * 1024, name: str = "media/bomb.bin") -> bytes:
    return with_entry(name, zeros(size))


def nested_bomb(size: int = 20 * 1024 * 1024) -> bytes:
    inner = build([("inner/zeros.bin", zeros(size))])
    return build([*valid_entries(), ("extras/inner.zip", inner)], compression=zipfile.ZIP_STORED)


def nested_deep(levels: int = 3) -> bytes:
    data = build([("deepest.txt", b"hello")])
    for level in range(levels - 1):
        data = build([(f"level{level}.zip", data)])
    return build([*valid_entries(), ("extras/outer.zip", data)])


def patch_headers(
    data: bytes, name: str, *, local_offset: int, central_offset: int, fmt: str, value: int
) -> bytes:
    """Overwrites one field of ``name``'s local header and central directory record
    (offsets from APPNOTE 4.3.7 and 4.3.12)."""
    out = bytearray(data)
    raw = name.encode()
    for signature, offset, name_offset in (
        (b"PK\x03\x04", local_offset, 30),
        (b"PK\x01\x02", central_offset, 46),
    ):
        position = 0
        while (position := out.find(signature, position)) != -1:
            if out[position + name_offset : position + name_offset + len(raw)] == raw:
                struct.pack_into(fmt, out, position + offset, value)
                break
            position += 4
        else:
            raise AssertionError(f"{name} not found")
    return bytes(out)


def size_liar(declared: int = 1000, actual: int = 5 * 1024 * 1024) -> bytes:
    """A zip whose last entry says it unpacks to ``declared`` bytes while its data
    unpacks to ``actual``."""
    data = build([*valid_entries(), ("aa-first.html", b"<p>first</p>"), ("zz-liar.bin", zeros(actual))])
    return patch_headers(data, "zz-liar.bin", local_offset=22, central_offset=24, fmt="<I", value=declared)


def entity_manifest(doctype: str) -> bytes:
    return build([("imsmanifest.xml", manifest("&e;", doctype=doctype)), ("index.html", LAUNCH)])


XXE = '<!DOCTYPE manifest [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
BILLION_LAUGHS = (
    "<!DOCTYPE manifest [\n"
    + '<!ENTITY l0 "ha">\n'
    + "".join(f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">\n' for n in range(1, 10))
    + '<!ENTITY e "&l9;">\n]>'
)
