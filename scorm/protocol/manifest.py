"""imsmanifest.xml parsing for SCORM 1.2 and SCORM 2004 (2nd, 3rd, 4th edition), no Django.

The parser never resolves entities, loads a DTD or touches the network, and a
DOCTYPE that declares entities is refused outright: an entity expansion bomb or an
external entity is a rejection, not something to expand carefully.

Elements are matched by local name so the namespace variants authoring tools emit
(a missing default namespace, "imscp_rootv1p1p2" vs "imscp_v1p1") all read the same;
attribute names of the ADL extensions are matched ignoring case because SCORM 1.2
spells ``adlcp:scormtype`` and 2004 ``adlcp:scormType``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

from scorm.protocol.errors import PackageRejected

MANIFEST = "imsmanifest.xml"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
NS_ADLCP_12 = "http://www.adlnet.org/xsd/adlcp_rootv1p2"
NS_CP_12 = "http://www.imsproject.org/xsd/imscp_rootv1p1p2"
NS_ADLCP_2004 = "http://www.adlnet.org/xsd/adlcp_v1p3"
NS_IMSSS = "http://www.imsglobal.org/xsd/imsss"

V12 = "1.2"
V2004_2 = "2004 2nd Edition"
V2004_3 = "2004 3rd Edition"
V2004_4 = "2004 4th Edition"

_SCHEMAVERSIONS = {
    "1.2": V12,
    "cam 1.3": V2004_2,
    "1.3": V2004_2,
    "2004 2nd edition": V2004_2,
    "2004 3rd edition": V2004_3,
    "2004 4th edition": V2004_4,
}
_ENTITY_MARKERS = tuple("<!ENTITY".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))


@dataclass(frozen=True)
class ParsedSco:
    """One launchable item of the default organization."""

    identifier: str
    title: str
    href: str  # path inside the package: posix, normalised, xml:base applied, %-decoded
    parameters: str  # query/fragment to append at launch: "" or starting with "?" or "#"
    scorm_type: str  # "sco" | "asset"
    mastery_score: Decimal | None
    prerequisites: str
    data_from_lms: str
    time_limit_action: str
    max_time_allowed: str
    sequencing: dict[str, Any]
    order: int
    resource_identifier: str


@dataclass(frozen=True)
class ParsedPackage:
    version: str  # "1.2" | "2004 2nd Edition" | "2004 3rd Edition" | "2004 4th Edition"
    title: str
    identifier: str
    default_org: str
    scos: tuple[ParsedSco, ...]
    # The organizations (item trees) and resources as JSON, kept on the package row.
    manifest: dict[str, Any] = field(default_factory=dict)


def _local(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _children(node: Any, name: str) -> list[Any]:
    return [child for child in node if isinstance(child.tag, str) and _local(child) == name]


def _child(node: Any, name: str) -> Any | None:
    found = _children(node, name)
    return found[0] if found else None


def _child_ci(node: Any, name: str) -> Any | None:
    wanted = name.lower()
    for child in node:
        if isinstance(child.tag, str) and _local(child).lower() == wanted:
            return child
    return None


def _text(node: Any | None) -> str:
    if node is None:
        return ""
    return " ".join("".join(node.itertext()).split())


def _attr_ci(node: Any, name: str) -> str:
    wanted = name.lower()
    for key, value in node.attrib.items():
        if etree.QName(key).localname.lower() == wanted:
            return str(value)
    return ""


_PREFIXES = {
    "http://www.adlnet.org/xsd/adlseq_v1p3": "adlseq",
    "http://www.adlnet.org/xsd/adlnav_v1p3": "adlnav",
    NS_ADLCP_2004: "adlcp",
    NS_ADLCP_12: "adlcp",
}


def _json_key(name: str) -> str:
    # IMS SS (and IMS CP) names stay bare; ADL extensions keep their usual prefix,
    # because adlseq:objectives sits beside imsss:objectives in one sequencing element.
    qname = etree.QName(name)
    if qname.namespace in (None, NS_IMSSS):
        return qname.localname
    return f"{_PREFIXES.get(qname.namespace or '', 'ext')}:{qname.localname}"


def _to_json(node: Any) -> dict[str, Any]:
    """An element as JSON: attributes and child elements (as lists) by name, text
    under "#text". Enough to run sequencing from later without the XML."""
    out: dict[str, Any] = {_json_key(key): str(value) for key, value in node.attrib.items()}
    text = (node.text or "").strip()
    if text:
        out["#text"] = text
    for child in node:
        if isinstance(child.tag, str):
            out.setdefault(_json_key(child.tag), []).append(_to_json(child))
    return out


def _refuse_entities(data: bytes) -> None:
    if any(marker in data for marker in _ENTITY_MARKERS):
        raise PackageRejected(
            "xml_entities",
            f"{MANIFEST} declares XML entities (a DOCTYPE with <!ENTITY>); entities are refused "
            "because they can expand without bound or read files.",
            entry=MANIFEST,
        )


def parse_xml(data: bytes, *, name: str = MANIFEST) -> Any:
    """The document's root element, parsed safely, or PackageRejected."""
    _refuse_entities(data)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise PackageRejected(
            "manifest_xml", f"{name} is not well-formed XML: {exc.msg} (line {exc.lineno}).", entry=name
        ) from exc
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        _refuse_entities(b"<!ENTITY")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        _refuse_entities(b"<!ENTITY")
    return root


def detect_version(root: Any) -> str:
    metadata = _child(root, "metadata")
    declared = _text(_child(metadata, "schemaversion")) if metadata is not None else ""
    if declared:
        version = _SCHEMAVERSIONS.get(declared.lower())
        if version:
            return version
    namespaces = set(root.nsmap.values()) | {etree.QName(root).namespace}
    for node in root.iter():
        if isinstance(node.tag, str):
            namespaces.add(etree.QName(node).namespace)
            namespaces.update(etree.QName(key).namespace for key in node.attrib)
    if NS_ADLCP_12 in namespaces or NS_CP_12 in namespaces:
        return V12
    if NS_IMSSS in namespaces or NS_ADLCP_2004 in namespaces:
        # No (known) schemaversion: 3rd edition is what tools emitting these
        # namespaces without one most often mean; the runtime is the same API.
        return V2004_3
    shown = f"schemaversion {declared!r}" if declared else "no schemaversion"
    raise PackageRejected(
        "unknown_version",
        f"{MANIFEST} does not say which SCORM version it is ({shown}, and no SCORM 1.2 or 2004 namespace).",
        entry=MANIFEST,
    )


def resolve_href(bases: list[str], href: str, *, where: str) -> tuple[str, str]:
    """(path inside the package, query/fragment) for a resource href under its
    xml:base chain (manifest, resources, resource), or PackageRejected. Relative
    references resolve as in RFC 3986 5.2: each replaces the last segment of the
    one before it."""
    full = ""
    for ref in [*bases, href]:
        if not ref:
            continue
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc:
            raise PackageRejected(
                "external_launch",
                f"{where} launches {ref!r}, an address outside the package; only files inside it can be played.",
                entry=MANIFEST,
            )
        if ref.startswith("/"):
            raise PackageRejected(
                "launch_outside",
                f"{where} launches {ref!r}, an absolute path outside the package.",
                entry=MANIFEST,
            )
        full = full[: full.rfind("/") + 1] + ref
    split = urlsplit(full)
    path = unquote(split.path).replace("\\", "/")
    suffix = ("?" + split.query if split.query else "") + ("#" + split.fragment if split.fragment else "")
    normalised = posixpath.normpath(path) if path else ""
    if not path or normalised in (".", "") or path.endswith("/"):
        raise PackageRejected(
            "missing_launch", f"{where} has no launch file (href {href!r}).", entry=MANIFEST
        )
    if path.startswith("/") or normalised.startswith("../") or normalised == "..":
        raise PackageRejected(
            "launch_outside",
            f"{where} launches {full!r}, which is outside the package.",
            entry=MANIFEST,
        )
    return normalised, suffix


def _merge_parameters(href_suffix: str, parameters: str) -> str:
    """The query of a resource href and an item's ``parameters`` (CP 1.1.4 / SCORM CAM
    3.4.1.8: leading "?" or "&" dropped when joining, "#" kept as a fragment)."""
    parameters = parameters.strip()
    query, _, fragment = href_suffix.partition("#")
    query = query.lstrip("?")
    if parameters.startswith("#"):
        return ("?" + query if query else "") + parameters
    extra = parameters.lstrip("?&")
    extra, _, extra_fragment = extra.partition("#")
    fragment = fragment or extra_fragment
    joined = "&".join(part for part in (query, extra) if part)
    return ("?" + joined if joined else "") + ("#" + fragment if fragment else "")


def _decimal(value: str, *, what: str, low: Decimal, high: Decimal) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or not low <= number <= high:
        raise PackageRejected(
            "bad_number", f"{what} is {value!r}; it must be a number from {low} to {high}.", entry=MANIFEST
        )
    return number


def _sequencing(item: Any, collection: dict[str, Any]) -> tuple[dict[str, Any], Any | None]:
    """(JSON kept for the player, the effective imsss:sequencing element or None)."""
    seq = _child(item, "sequencing")
    out: dict[str, Any] = {}
    effective = seq
    if seq is not None:
        merged: dict[str, Any] = {}
        ref = _attr_ci(seq, "IDRef").strip()
        if ref:
            shared = collection.get(ref)
            if shared is None:
                raise PackageRejected(
                    "sequencing_ref",
                    f"Item {(item.get('identifier') or '').strip()!r} refers to sequencing {ref!r}, "
                    "which the sequencingCollection does not define.",
                    entry=MANIFEST,
                )
            merged.update(_to_json(shared))
            out["collection_ref"] = ref
            if len(seq) == 0:
                effective = shared
        merged.update(_to_json(seq))
        out["imsss"] = merged
    threshold = _child_ci(item, "completionThreshold")
    if threshold is not None:
        out["completionThreshold"] = _to_json(threshold)
    shared_data = _child(item, "data")  # adlcp:data, 4th edition shared data buckets
    if shared_data is not None:
        out["adlcp:data"] = _to_json(shared_data)
    presentation = _child(item, "presentation")
    if presentation is not None:
        out["presentation"] = _to_json(presentation)
    return out, effective


def _mastery_2004(seq: Any | None) -> Decimal | None:
    if seq is None:
        return None
    objectives = _child(seq, "objectives")
    primary = _child(objectives, "primaryObjective") if objectives is not None else None
    if primary is None or primary.get("satisfiedByMeasure", "false").strip().lower() not in ("true", "1"):
        return None
    measure = _text(_child(primary, "minNormalizedMeasure")) or "1.0"  # IMS SS default
    return _decimal(measure, what="minNormalizedMeasure", low=Decimal(-1), high=Decimal(1))


@dataclass
class _State:
    version: str
    resources: dict[str, Any]
    bases: list[str]
    collection: dict[str, Any]
    seen_items: set[str] = field(default_factory=set)
    scos: list[ParsedSco] = field(default_factory=list)


def _item_tree(node: Any, state: _State, *, org: bool) -> list[dict[str, Any]]:
    tree: list[dict[str, Any]] = []
    for item in _children(node, "item"):
        identifier = (item.get("identifier") or "").strip()
        if not identifier:
            raise PackageRejected(
                "item_identifier",
                f"An item titled {_text(_child(item, 'title'))!r} has no identifier.",
                entry=MANIFEST,
            )
        if identifier in state.seen_items:
            raise PackageRejected(
                "item_duplicate", f"Two items have the identifier {identifier!r}.", entry=MANIFEST
            )
        state.seen_items.add(identifier)
        title = _text(_child(item, "title"))[:500] or identifier
        ref = (item.get("identifierref") or "").strip()
        parameters = item.get("parameters") or ""
        entry: dict[str, Any] = {"identifier": identifier, "title": title}
        if ref:
            entry["identifierref"] = ref
            if parameters:
                entry["parameters"] = parameters
        if (item.get("isvisible") or "").strip().lower() == "false":
            entry["isvisible"] = False
        if org and ref:
            state.scos.append(_launchable(item, identifier, title, ref, parameters, state))
        children = _item_tree(item, state, org=org)
        if children:
            entry["items"] = children
        tree.append(entry)
    return tree


def _launchable(
    item: Any, identifier: str, title: str, ref: str, parameters: str, state: _State
) -> ParsedSco:
    resource = state.resources.get(ref)
    if resource is None:
        raise PackageRejected(
            "missing_resource",
            f"Item {identifier!r} points at resource {ref!r}, which the manifest does not define.",
            entry=MANIFEST,
        )
    href = resource.get("href") or ""
    where = f"Item {identifier!r} (resource {ref!r})"
    if not href.strip():
        raise PackageRejected(
            "missing_launch", f"{where} has no launch file: the resource has no href.", entry=MANIFEST
        )
    res_base = resource.get(XML_BASE) or ""
    path, suffix = resolve_href([*state.bases, res_base], href.strip(), where=where)
    scorm_type = (_attr_ci(resource, "scormtype") or "sco").strip().lower()
    scorm_type = "asset" if scorm_type == "asset" else "sco"
    sequencing, effective = _sequencing(item, state.collection) if state.version != V12 else ({}, None)
    if state.version == V12:
        mastery_text = _text(_child_ci(item, "masteryscore"))
        mastery = (
            _decimal(
                mastery_text,
                what=f"The masteryscore of item {identifier!r}",
                low=Decimal(0),
                high=Decimal(100),
            )
            if mastery_text
            else None
        )
        limits = None
        max_time = _text(_child_ci(item, "maxtimeallowed"))
    else:
        mastery = _mastery_2004(effective)
        limits = _child(effective, "limitConditions") if effective is not None else None
        max_time = (limits.get("attemptAbsoluteDurationLimit") or "").strip() if limits is not None else ""
    return ParsedSco(
        identifier=identifier,
        title=title,
        href=path,
        parameters=_merge_parameters(suffix, parameters)[:1000],
        scorm_type=scorm_type,
        mastery_score=mastery,
        prerequisites=_text(_child_ci(item, "prerequisites"))[:1000] if state.version == V12 else "",
        data_from_lms=_text(_child_ci(item, "dataFromLMS")),
        time_limit_action=_text(_child_ci(item, "timeLimitAction"))[:50],
        max_time_allowed=max_time[:50],
        sequencing=sequencing,
        order=len(state.scos),
        resource_identifier=ref,
    )


def parse_manifest(data: bytes) -> ParsedPackage:
    """Parses imsmanifest.xml bytes; PackageRejected with the reason when the
    manifest cannot be played (it names the item, resource or organization)."""
    root = parse_xml(data)
    if _local(root) != "manifest":
        raise PackageRejected(
            "manifest_root", f"{MANIFEST}'s root element is <{_local(root)}>, not <manifest>.", entry=MANIFEST
        )
    version = detect_version(root)
    organizations = _child(root, "organizations")
    orgs = _children(organizations, "organization") if organizations is not None else []
    if not orgs:
        raise PackageRejected(
            "no_organization",
            f"{MANIFEST} has no organization, so there is nothing to launch.",
            entry=MANIFEST,
        )
    for org in orgs:
        if not (org.get("identifier") or "").strip():
            raise PackageRejected(
                "organization_identifier",
                f"An organization titled {_text(_child(org, 'title'))!r} has no identifier.",
                entry=MANIFEST,
            )
    default = (organizations.get("default") or "").strip() if organizations is not None else ""
    by_id = {org.get("identifier").strip(): org for org in orgs}
    if default and default not in by_id:
        raise PackageRejected(
            "default_organization",
            f"The default organization {default!r} is not one of the manifest's organizations "
            f"({', '.join(repr(key) for key in by_id)}).",
            entry=MANIFEST,
        )
    default = default or next(iter(by_id))
    resources_node = _child(root, "resources")
    resources: dict[str, Any] = {}
    for resource in _children(resources_node, "resource") if resources_node is not None else []:
        rid = (resource.get("identifier") or "").strip()
        if rid:
            resources[rid] = resource
    collection: dict[str, Any] = {}
    seq_collection = _child(root, "sequencingCollection")
    for seq in _children(seq_collection, "sequencing") if seq_collection is not None else []:
        if (seq.get("ID") or "").strip():
            collection[seq.get("ID").strip()] = seq
    bases = [
        root.get(XML_BASE) or "",
        (resources_node.get(XML_BASE) or "") if resources_node is not None else "",
    ]
    state = _State(version=version, resources=resources, bases=bases, collection=collection)
    org_json = []
    for identifier, org in by_id.items():
        org_json.append(
            {
                "identifier": identifier,
                "title": _text(_child(org, "title"))[:500],
                "items": _item_tree(org, state, org=identifier == default),
            }
        )
    if not state.scos:
        raise PackageRejected(
            "no_launchable_item",
            f"The default organization {default!r} has no item that points at a resource to launch.",
            entry=MANIFEST,
        )
    title = (
        _text(_child(by_id[default], "title"))[:500] or (root.get("identifier") or "").strip() or "Untitled"
    )
    manifest_json = {
        "version": version,
        "identifier": (root.get("identifier") or "").strip(),
        "default_org": default,
        "organizations": org_json,
        "resources": [
            {
                "identifier": rid,
                "type": resource.get("type") or "",
                "scorm_type": (_attr_ci(resource, "scormtype") or "").lower(),
                "href": resource.get("href") or "",
                "xml_base": resource.get(XML_BASE) or "",
                "file_count": len(_children(resource, "file")),
                "dependencies": [dep.get("identifierref") or "" for dep in _children(resource, "dependency")],
            }
            for rid, resource in resources.items()
        ],
    }
    if collection:
        manifest_json["sequencing_collection"] = {key: _to_json(value) for key, value in collection.items()}
    return ParsedPackage(
        version=version,
        title=title,
        identifier=(root.get("identifier") or "").strip()[:500],
        default_org=default,
        scos=tuple(state.scos),
        manifest=manifest_json,
    )


_NOT_SCORM = (
    ("cmi5.xml", "cmi5", "cmi5 packages are not supported yet"),
    ("tincan.xml", "xapi", "xAPI (Tin Can) packages are not supported yet"),
)


def identify_package(paths: list[str]) -> str:
    """Where the manifest is (``imsmanifest.xml``), or PackageRejected naming what the
    package is instead (cmi5, xAPI, a manifest one folder down, nothing)."""
    present = set(paths)
    if MANIFEST in present:
        return MANIFEST
    folded = {path.casefold(): path for path in paths}
    for name, code, reason in _NOT_SCORM:
        if name in folded:
            raise PackageRejected(
                code, f"{reason} (the zip has {folded[name]!r}, not {MANIFEST}).", entry=folded[name]
            )
    if MANIFEST in folded:
        actual = folded[MANIFEST]
        raise PackageRejected(
            "manifest_name",
            f"The manifest is named {actual!r}; SCORM requires exactly {MANIFEST!r}.",
            entry=actual,
        )
    nested = sorted(path for path in paths if posixpath.basename(path).casefold() == MANIFEST)
    if nested:
        raise PackageRejected(
            "manifest_not_at_top",
            f"{MANIFEST} must be at the top of the zip, but it is at {nested[0]!r}: "
            "zip the course folder's contents, not the folder.",
            entry=nested[0],
        )
    for name, code, reason in _NOT_SCORM:
        deeper = sorted(path for path in paths if posixpath.basename(path).casefold() == name)
        if deeper:
            raise PackageRejected(code, f"{reason} (the zip has {deeper[0]!r}).", entry=deeper[0])
    raise PackageRejected(
        "no_manifest", f"This is not a SCORM package: the zip has no {MANIFEST} at its top.", entry=None
    )


__all__ = [
    "MANIFEST",
    "ParsedPackage",
    "ParsedSco",
    "detect_version",
    "identify_package",
    "parse_manifest",
    "parse_xml",
    "resolve_href",
]
