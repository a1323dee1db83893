"""imsmanifest.xml parsing (scorm/protocol/manifest.py): the ADL conformance test
suite's manifests, versions, launch URLs, and hostile XML."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from scorm.protocol.errors import PackageRejected
from scorm.protocol.manifest import identify_package, parse_manifest, resolve_href
from tests.scorm import hostile_zips as hz

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "scorm"
CTS = sorted((FIXTURES / "adl-cts-manifests").glob("*/imsmanifest.xml"))


def test_the_cts_fixtures_are_there() -> None:
    assert len(CTS) == 189


@pytest.mark.parametrize("path", CTS, ids=[path.parent.name for path in CTS])
def test_every_cts_manifest_parses(path: Path) -> None:
    parsed = parse_manifest(path.read_bytes())
    assert parsed.version == "2004 4th Edition"
    assert parsed.scos
    assert parsed.identifier.endswith(path.parent.name.split("_")[-1])
    assert parsed.identifier == parsed.identifier.strip()
    assert all(sco.href and not sco.href.startswith(("/", "../")) for sco in parsed.scos)


def test_the_invalid_cts_manifest_is_rejected() -> None:
    data = (
        FIXTURES / "adl-cts-manifests-invalid" / "CM-01-broken-default-org" / "imsmanifest.xml"
    ).read_bytes()
    with pytest.raises(PackageRejected) as caught:
        parse_manifest(data)
    assert caught.value.code == "default_organization"
    assert caught.value.reason == (
        "The default organization 'NONEXISTENT_ORG' is not one of the manifest's organizations ('CM-01')."
    )


def test_cts_xml_base_parameters_and_mastery() -> None:
    parsed = parse_manifest(
        (FIXTURES / "adl-cts-manifests" / "LMSTestPackage_CM-09bb" / "imsmanifest.xml").read_bytes()
    )
    first = parsed.scos[0]
    assert (first.identifier, first.href, first.parameters) == (
        "activity_1",
        "resources/SequencingTest.htm",
        "?tc=CM-09bb&act=1",
    )
    assert [sco.href for sco in parsed.scos][:4] == [
        "resources/SequencingTest.htm",
        "resources/SequencingTest.htm",
        "resources/exitAllOnUnload.htm",
        "resources/SequencingTest.htm",
    ]
    cm01 = parse_manifest(
        (FIXTURES / "adl-cts-manifests" / "LMSTestPackage_CM-01" / "imsmanifest.xml").read_bytes()
    )
    by_id = {sco.identifier: sco for sco in cm01.scos}
    assert by_id["activity_1"].max_time_allowed == "P5Y6M4DT12H30M58S"
    assert by_id["activity_2"].mastery_score == Decimal("0.8")
    assert by_id["activity_2"].sequencing["imsss"]["objectives"][0]["primaryObjective"][0][
        "satisfiedByMeasure"
    ] == ("true")
    assert "presentation" in by_id["activity_1"].sequencing


def test_sequencing_collection_is_merged() -> None:
    parsed = parse_manifest(
        (FIXTURES / "adl-cts-manifests" / "LMSTestPackage_CM-08" / "imsmanifest.xml").read_bytes()
    )
    referencing = [sco for sco in parsed.scos if sco.sequencing.get("collection_ref")]
    assert referencing
    assert referencing[0].sequencing["collection_ref"] == "GeneralSequencing"
    assert "sequencing_collection" in parsed.manifest


SCORM12 = """<?xml version="1.0"?>
<manifest identifier="m" xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
  xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2" xml:base="course/">
  <metadata><schema>ADL SCORM</schema><schemaversion>{version}</schemaversion></metadata>
  <organizations default="o"><organization identifier="o"><title> My  course </title>
    <item identifier="a" identifierref="r1" parameters="{parameters}"><title>A</title>
      <adlcp:masteryscore>{mastery}</adlcp:masteryscore>
      <adlcp:prerequisites type="aicc_script">b &amp; c</adlcp:prerequisites>
      <adlcp:datafromlms>hello</adlcp:datafromlms>
      <adlcp:maxtimeallowed>00:30:00</adlcp:maxtimeallowed>
      <adlcp:timelimitaction>exit,message</adlcp:timelimitaction>
      <item identifier="b" identifierref="r2"><title>B</title></item>
    </item>
  </organization></organizations>
  <resources xml:base="sub/">
    <resource identifier="r1" type="webcontent" adlcp:scormtype="sco" href="{href}"/>
    <resource identifier="r2" type="webcontent" adlcp:scormtype="asset" href="b.html"/>
  </resources>
</manifest>"""


def _m12(**kwargs: str) -> bytes:
    values = {"version": "1.2", "parameters": "", "mastery": "80", "href": "a.html"} | kwargs
    return SCORM12.format(**values).encode()


def test_scorm12_item_fields_and_xml_base_chain() -> None:
    parsed = parse_manifest(_m12(href="dir/a%20b.html?x=1", parameters="?y=2"))
    assert (parsed.version, parsed.title, parsed.identifier, parsed.default_org) == (
        "1.2",
        "My course",
        "m",
        "o",
    )
    first, second = parsed.scos
    assert first.href == "course/sub/dir/a b.html"
    assert first.parameters == "?x=1&y=2"
    assert first.mastery_score == Decimal("80")
    assert (first.prerequisites, first.data_from_lms, first.max_time_allowed, first.time_limit_action) == (
        "b & c",
        "hello",
        "00:30:00",
        "exit,message",
    )
    assert (first.scorm_type, second.scorm_type, second.order) == ("sco", "asset", 1)
    assert parsed.manifest["organizations"][0]["items"][0]["items"][0]["identifier"] == "b"


@pytest.mark.parametrize(
    ("declared", "version"),
    [
        ("1.2", "1.2"),
        ("CAM 1.3", "2004 2nd Edition"),
        ("2004 3rd Edition", "2004 3rd Edition"),
        ("2004 4th Edition", "2004 4th Edition"),
        ("", "1.2"),  # no schemaversion: the SCORM 1.2 namespaces say it
    ],
)
def test_version_detection(declared: str, version: str) -> None:
    assert parse_manifest(_m12(version=declared)).version == version


@pytest.mark.parametrize(
    ("kwargs", "code", "reason"),
    [
        (
            {"href": "http://evil.example/a.html"},
            "external_launch",
            "Item 'a' (resource 'r1') launches 'http://evil.example/a.html', an address outside the package; "
            "only files inside it can be played.",
        ),
        (
            {"href": "../../../a.html"},
            "launch_outside",
            "Item 'a' (resource 'r1') launches 'course/sub/../../../a.html', which is outside the package.",
        ),
        (
            {"href": "/etc/passwd"},
            "launch_outside",
            "Item 'a' (resource 'r1') launches '/etc/passwd', an absolute path outside the package.",
        ),
        (
            {"mastery": "eighty"},
            "bad_number",
            "The masteryscore of item 'a' is 'eighty'; it must be a number from 0 to 100.",
        ),
        (
            {"version": "9.9"},
            "unknown_version",
            None,
        ),
    ],
)
def test_bad_manifests_are_rejected_with_the_reason(
    kwargs: dict[str, str], code: str, reason: str | None
) -> None:
    data = _m12(**kwargs)
    if code == "unknown_version":
        data = data.replace(b"rootv1p2", b"nothing").replace(b"rootv1p1p2", b"nothing")
    with pytest.raises(PackageRejected) as caught:
        parse_manifest(data)
    assert caught.value.code == code
    if reason is not None:
        assert caught.value.reason == reason


def test_external_entity_is_refused_not_resolved() -> None:
    data = hz.manifest("&e;", doctype=hz.XXE)
    with pytest.raises(PackageRejected) as caught:
        parse_manifest(data)
    assert caught.value.code == "xml_entities"
    assert caught.value.reason == (
        "imsmanifest.xml declares XML entities (a DOCTYPE with <!ENTITY>); entities are refused because they "
        "can expand without bound or read files."
    )


def test_entity_expansion_bomb_is_refused_also_in_utf16() -> None:
    for data in (
        hz.manifest("&e;", doctype=hz.BILLION_LAUGHS),
        hz.manifest("&e;", doctype=hz.BILLION_LAUGHS)
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .encode("utf-16"),
    ):
        with pytest.raises(PackageRejected) as caught:
            parse_manifest(data)
        assert caught.value.code == "xml_entities"


def test_a_doctype_without_entities_is_fine() -> None:
    data = hz.manifest(doctype="<!DOCTYPE manifest>")
    assert parse_manifest(data).title == "Generated course"


def test_href_resolution_rules() -> None:
    assert resolve_href(["a/", "b/"], "c.html", where="x") == ("a/b/c.html", "")
    assert resolve_href(["a/b"], "c.html", where="x") == ("a/c.html", "")
    assert resolve_href([], "./x/../y.html#top", where="x") == ("y.html", "#top")


def test_identify_package() -> None:
    assert identify_package(["imsmanifest.xml", "a.html"]) == "imsmanifest.xml"
    cases = [
        (
            ["cmi5.xml", "index.html"],
            "cmi5",
            "cmi5 packages are not supported yet (the zip has 'cmi5.xml', not imsmanifest.xml).",
        ),
        (
            ["tincan.xml"],
            "xapi",
            "xAPI (Tin Can) packages are not supported yet (the zip has 'tincan.xml', not imsmanifest.xml).",
        ),
        (
            ["course/imsmanifest.xml"],
            "manifest_not_at_top",
            "imsmanifest.xml must be at the top of the zip, but it "
            "is at 'course/imsmanifest.xml': zip the course folder's contents, not the folder.",
        ),
        (
            ["IMSManifest.xml"],
            "manifest_name",
            "The manifest is named 'IMSManifest.xml'; SCORM requires exactly 'imsmanifest.xml'.",
        ),
        (
            ["index.html"],
            "no_manifest",
            "This is not a SCORM package: the zip has no imsmanifest.xml at its top.",
        ),
    ]
    for paths, code, reason in cases:
        with pytest.raises(PackageRejected) as caught:
            identify_package(paths)
        assert (caught.value.code, caught.value.reason) == (code, reason)
