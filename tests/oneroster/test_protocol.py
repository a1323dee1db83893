"""The OneRoster protocol code without a database: generator, CSV reading, row rules."""

from __future__ import annotations

import collections
import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from oneroster.protocol.csv_source import CsvPackage
from oneroster.protocol.generator import SIZES, District
from oneroster.protocol.records import RosterProtocolError


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _records(path: Path, **kwargs: object) -> list:
    with CsvPackage(path, **kwargs) as package:  # type: ignore[arg-type]
        return list(package.records())


def test_generator_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    District(120, seed=3).write_csv(tmp_path / "a")
    District(120, seed=3).write_csv(tmp_path / "b")
    District(120, seed=4).write_csv(tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["users.csv"] != _digest(tmp_path / "c")["users.csv"]


def test_sizes_match_testing_md() -> None:
    assert SIZES == {"S": 2_500, "M": 10_000, "L": 50_000, "XL": 200_000}
    district = District("S", guardians=False)
    assert len(district.schools) == 5
    assert sum(1 for _ in district.rows("enrollment")) == 15_600  # ~16K
    assert sum(1 for _ in district.rows("user")) == 2_500 + 125 + 5
    large = District("L", guardians=False)
    # Shape only (no iteration): 6 student enrollments each plus one teacher per class.
    assert large.n_students * 6 + large.n_classes == 312_000  # ~315K


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_written_package_reads_back_clean(tmp_path: Path, version: str) -> None:
    District(60, seed=2).write_csv(tmp_path / "pkg", version=version)
    records = _records(tmp_path / "pkg")
    assert [r for r in records if r.errors] == []
    counts = collections.Counter(r.entity for r in records)
    # 1 school of 60 students: 3 sections x 6 periods, 3 teachers, 1 admin, 60 parents.
    assert counts == {
        "org": 2,
        "academicSession": 3,
        "course": 6,
        "class": 18,
        "user": 124,
        "role": 124,
        "agent": 120,
        "enrollment": 18 + 360,
    }
    assert (tmp_path / "pkg" / "roles.csv").exists() is (version == "1.2")


def test_zip_with_a_wrapping_folder_reads_like_a_folder(tmp_path: Path) -> None:
    District(30).write_csv(tmp_path / "pkg")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in (tmp_path / "pkg").iterdir():
            z.write(f, f"export-2026/{f.name}")
    assert [(r.entity, r.sourced_id) for r in _records(archive)] == [
        (r.entity, r.sourced_id) for r in _records(tmp_path / "pkg")
    ]


def test_generated_zip_reads_back(tmp_path: Path) -> None:
    District(30).write_csv(tmp_path / "d.zip", version="1.2", as_zip=True)
    with CsvPackage(tmp_path / "d.zip") as package:
        assert package.version == "1.2"
        assert sum(1 for r in package.records() if r.entity == "enrollment") == 2 * 6 + 30 * 6


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_headers_are_read_leniently(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg, "manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.orgs,bulk\n")
    _write(
        pkg,
        "orgs.csv",
        "\ufeff SourcedId ,STATUS,dateLastModified,Name,type,extraColumn\nsch-1,,,North High,school,x\n",
    )
    (record,) = _records(pkg)
    assert record.errors == []
    assert (record.sourced_id, record.data["name"], record.data["type"]) == ("sch-1", "North High", "school")


def test_row_errors_name_file_and_line(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg, "manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.academicSessions,bulk\n")
    _write(
        pkg,
        "academicSessions.csv",
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n"
        "as-1,,,Fall,semester,2026-08-17,2026-12-18,,2027\n"
        "as-2,,,Spring,season,2027-01-05,2027-06-01,,2027\n"
        "as-3,,,Summer,term,2027-13-01,2027-08-01,,2027\n"
        "as-4,,,Late,term,2027-06-01,2027-05-01,,2027\n"
        "as-5,tobedeleted,,Gone,term,2027-06-01,2027-07-01,,2027\n"
        "as-6,,,Short,term\n",
    )
    errors = [str(e) for r in _records(pkg) for e in r.row_errors()]
    assert errors == [
        "academicSessions.csv:3 sourcedId=as-2: type 'season' is not one of gradingPeriod, schoolYear, semester, term",
        "academicSessions.csv:4 sourcedId=as-3: startDate: '2027-13-01' is not a date (YYYY-MM-DD)",
        "academicSessions.csv:5 sourcedId=as-4: endDate 2027-05-01 is before startDate 2027-06-01",
        "academicSessions.csv:6 sourcedId=as-5: status tobedeleted is only allowed in a delta file",
        "academicSessions.csv:7 sourcedId=as-6: startDate is required",
        "academicSessions.csv:7 sourcedId=as-6: endDate is required",
        "academicSessions.csv:7 sourcedId=as-6: row has 5 fields, the header has 9",
    ]


def test_missing_required_column_is_an_error_on_line_one(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg, "manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.users,bulk\n")
    _write(pkg, "users.csv", "sourcedId,status,dateLastModified,role\nu-1,,,student\n")
    (record,) = _records(pkg)
    assert [str(e) for e in record.row_errors()] == [
        "users.csv:1: missing required column(s): givenName, familyName"
    ]


def test_manifest_naming_a_missing_file_is_refused(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg, "manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.users,bulk\n")
    with pytest.raises(RosterProtocolError, match=re.escape("users.csv is bulk, but the file is missing")):
        CsvPackage(pkg)


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg, "manifest.csv", "propertyName,value\noneroster.version,2.0\n")
    with pytest.raises(RosterProtocolError, match=re.escape("oneroster.version '2.0' is not 1.1 or 1.2")):
        CsvPackage(pkg)


def test_delta_epoch_lists_only_changes(tmp_path: Path) -> None:
    base = District(500, seed=6, change_rate=0.05, rekey_rate=0.01)
    later = base.at(1)
    later.write_csv(tmp_path / "delta", mode="delta")
    records = _records(tmp_path / "delta")
    assert records, "a 5% change rate over 500 students must change something"
    assert all(r.errors == [] for r in records)
    statuses = collections.Counter((r.entity, r.status) for r in records)
    withdrawn = [i for i in range(500) if later.withdrawn(i) and not base.withdrawn(i)]
    # A withdrawn student and their parent leave; their six enrollments go too.
    assert statuses[("user", "tobedeleted")] >= 2 * len(withdrawn)
    assert statuses[("enrollment", "tobedeleted")] >= 6 * len(withdrawn)
    rekeyed = [
        i for i in range(500) if later.student_sid(i) != base.student_sid(i) and not later.withdrawn(i)
    ]
    new_users = {r.sourced_id for r in records if r.entity == "user" and r.status == "active"}
    assert {later.student_sid(i) for i in rekeyed} <= new_users


def test_generate_command_writes_a_zip_the_reader_accepts(tmp_path: Path) -> None:
    from django.core.management import call_command

    call_command("oneroster_generate", str(tmp_path / "d.zip"), size="40", seed=3, or_version="1.2")
    with CsvPackage(tmp_path / "d.zip") as package:
        assert package.version == "1.2"
        assert sum(1 for r in package.records() if r.entity == "user" and not r.errors) == 40 + 40 + 2 + 1
