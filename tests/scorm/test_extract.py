"""The zip checks (scorm/protocol/extract.py) on generated hostile archives."""

from __future__ import annotations

import io
import zipfile

import pytest

from scorm.protocol.errors import PackageRejected
from scorm.protocol.extract import Limits, check_entry_name, open_package
from tests.scorm import hostile_zips as hz

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name")


def _reject(data: bytes, limits: Limits | None = None) -> PackageRejected:
    with pytest.raises(PackageRejected) as caught:
        with open_package(io.BytesIO(data), limits) as archive:
            for entry in archive.entries:  # reading is part of opening for the caller
                b"".join(archive.iter_chunks(entry))
    return caught.value


NAME_CASES = [
    ("../evil.html", "path_traversal", "An entry's name climbs out of the package with '..': '../evil.html'"),
    (
        "content/../../evil.html",
        "path_traversal",
        "An entry's name climbs out of the package with '..': 'content/../../evil.html'",
    ),
    ("/etc/evil.html", "absolute_path", "An entry's name is an absolute path: '/etc/evil.html'"),
    (
        "..\\evil.html",
        "backslash_path",
        "An entry's name uses a backslash (a Windows path): '..\\\\evil.html'",
    ),
    (
        "content\\index.html",
        "backslash_path",
        "An entry's name uses a backslash (a Windows path): 'content\\\\index.html'",
    ),
    (
        "C:/Windows/evil.html",
        "drive_path",
        "An entry's name starts with a drive letter: 'C:/Windows/evil.html'",
    ),
    ("c:evil.html", "drive_path", "An entry's name starts with a drive letter: 'c:evil.html'"),
    (
        "bad\x01name.html",
        "control_character",
        "An entry's name contains a control character: 'bad\\x01name.html'",
    ),
]


@pytest.mark.parametrize(
    ("name", "code", "reason"), NAME_CASES, ids=[case[1] + ":" + case[0] for case in NAME_CASES]
)
def test_zip_slip_names_are_rejected_naming_the_entry(name: str, code: str, reason: str) -> None:
    rejected = _reject(hz.with_entry(name))
    assert (rejected.code, rejected.reason, rejected.entry) == (code, reason, name)


def test_names_are_normalised() -> None:
    assert check_entry_name("./content//a/./b.html") == "content/a/b.html"
    assert check_entry_name("content/") == "content"


def test_symlink_entry_is_rejected() -> None:
    rejected = _reject(hz.symlink("shared/passwd"))
    assert (rejected.code, rejected.reason) == ("symlink", "An entry is a symbolic link: 'shared/passwd'")


def test_encrypted_entry_is_rejected() -> None:
    rejected = _reject(hz.encrypted("secret.html"))
    assert (rejected.code, rejected.reason) == (
        "encrypted",
        "An entry is encrypted (password-protected zips cannot be imported): 'secret.html'",
    )


def test_duplicate_names_exact_and_case_folded() -> None:
    exact = _reject(hz.build([*hz.valid_entries(), ("index.html", b"again")]))
    assert (exact.code, exact.reason) == ("duplicate_name", "Two entries have the same name: 'index.html'")
    folded = _reject(hz.build([*hz.valid_entries(), ("INDEX.html", b"again")]))
    assert (folded.code, folded.reason) == (
        "duplicate_name",
        "Two entries differ only in upper/lower case: 'index.html' and 'INDEX.html'.",
    )
    normalised = _reject(hz.build([*hz.valid_entries(), ("./index.html", b"again")]))
    assert normalised.code == "duplicate_name"


def test_a_file_used_as_a_folder_is_rejected() -> None:
    rejected = _reject(hz.build([*hz.valid_entries(), ("index.html/x.js", b"1")]))
    assert (rejected.code, rejected.reason) == (
        "file_and_folder",
        "An entry is both a file and a folder: 'index.html'",
    )


def test_ratio_bomb_is_rejected_before_reading() -> None:
    rejected = _reject(hz.ratio_bomb(20 * 1024 * 1024, "media/bomb.bin"))
    assert rejected.code == "compression_ratio"
    assert rejected.entry == "media/bomb.bin"
    assert rejected.reason.startswith(
        "Compression ratio too high for the entry 'media/bomb.bin': 20 MB from "
    )
    assert rejected.reason.endswith("(more than 100 to 1; a zip bomb?).")


def test_small_highly_compressible_files_are_fine() -> None:
    with open_package(io.BytesIO(hz.with_entry("spaces.txt", b" " * 500_000))) as archive:
        assert [entry.path for entry in archive.entries] == ["imsmanifest.xml", "index.html", "spaces.txt"]


def test_nested_zip_bomb_is_rejected_naming_the_inner_zip() -> None:
    rejected = _reject(hz.nested_bomb(20 * 1024 * 1024))
    assert rejected.code == "compression_ratio"
    assert rejected.entry == "extras/inner.zip"
    assert rejected.reason.startswith(
        "Compression ratio too high for the zip inside the package at 'extras/inner.zip': 20 MB from "
    )


def test_zips_nested_too_deep_are_rejected() -> None:
    rejected = _reject(hz.nested_deep(levels=3))
    assert (rejected.code, rejected.entry) == ("nested_too_deep", "extras/outer.zip!level1.zip!level0.zip")
    with open_package(io.BytesIO(hz.nested_deep(levels=2))) as archive:
        assert len(archive.entries) == 3


def test_hostile_names_inside_a_nested_zip_are_rejected() -> None:
    inner = hz.build([("../../escape.html", b"x")])
    rejected = _reject(hz.with_entry("extras/inner.zip", inner))
    assert (rejected.code, rejected.entry) == ("path_traversal", "extras/inner.zip!../../escape.html")


def test_total_size_and_entry_count_limits() -> None:
    limits = Limits(max_total_bytes=100_000, max_entries=5)
    too_big = _reject(hz.with_entry("video.bin", bytes(range(256)) * 400), limits)
    assert (too_big.code, too_big.entry) == ("too_large_uncompressed", "video.bin")
    assert too_big.reason == (
        "The package unpacks to more than 97.6562 KB (counting zips inside it); stopped at 'video.bin'."
    )
    many = _reject(hz.build([*hz.valid_entries(), *[(f"f{n}.txt", b"1") for n in range(4)]]), limits)
    assert (many.code, many.reason) == (
        "too_many_entries",
        "The package has 6 entries; at most 5 are allowed.",
    )
    inner = hz.build([(f"f{n}.txt", b"1") for n in range(4)])
    nested = _reject(hz.with_entry("extras/inner.zip", inner), limits)
    assert (nested.code, nested.entry) == ("too_many_entries", "extras/inner.zip!f2.txt")
    assert nested.reason == (
        "The package has more than 5 entries (counting zips inside it); stopped at 'extras/inner.zip!f2.txt'."
    )


def test_a_size_liar_fails_while_being_read_naming_the_entry() -> None:
    data = hz.size_liar(declared=1000, actual=5 * 1024 * 1024)
    with open_package(io.BytesIO(data)) as archive:  # the declared sizes look harmless
        liar = archive.get("zz-liar.bin")
        assert liar is not None and liar.size == 1000
        with pytest.raises(PackageRejected) as caught:
            b"".join(archive.iter_chunks(liar))
    assert caught.value.code == "corrupt_entry"
    assert caught.value.reason == "The entry 'zz-liar.bin' cannot be read: Bad CRC-32 for file 'zz-liar.bin'."


def test_not_a_zip_and_package_size_limit() -> None:
    rejected = _reject(b"this is not a zip")
    assert (rejected.code, rejected.reason) == (
        "not_a_zip",
        "The file is not a zip archive (File is not a zip file).",
    )
    too_big = _reject(hz.valid(), Limits(max_package_bytes=100))
    assert too_big.code == "package_too_large"


def test_unsupported_compression_method_is_rejected() -> None:
    data = bytearray(hz.valid())
    # Patch the method of "index.html" (central directory) to 99 (AE-x encryption).
    position = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    data[position + 10 : position + 12] = (99).to_bytes(2, "little")
    rejected = _reject(bytes(data))
    assert (rejected.code, rejected.entry) == ("compression_method", "index.html")


def test_valid_package_reads_back_exactly() -> None:
    with open_package(io.BytesIO(hz.valid())) as archive:
        entry = archive.get("index.html")
        assert entry is not None
        assert b"".join(archive.iter_chunks(entry)) == hz.LAUNCH
        assert archive.total_bytes == len(hz.manifest()) + len(hz.LAUNCH)


def test_directories_are_not_files() -> None:
    data = hz.build([("content/", b""), *hz.valid_entries()])
    with open_package(io.BytesIO(data)) as archive:
        assert [entry.path for entry in archive.entries] == ["imsmanifest.xml", "index.html"]


def test_stored_zip_of_the_fixture_reads(tmp_path: object) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as zf:
        zf.writestr("imsmanifest.xml", hz.manifest())
    with open_package(io.BytesIO(buffer.getvalue())) as archive:
        assert archive.read(archive.entries[0], 1 << 20) == hz.manifest()


def test_entry_count_is_checked_before_the_central_directory_is_read() -> None:
    data = bytearray(hz.valid())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60000).to_bytes(2, "little") * 2  # entries on disk, entries total
    rejected = _reject(bytes(data))
    assert (rejected.code, rejected.reason) == (
        "too_many_entries",
        "The package has 60000 entries; at most 20000 are allowed.",
    )
