"""RFC 8288 Link headers, as AGS and NRPS use them for paging (rel="next").

URLs are returned exactly as the platform wrote them: paths and query strings
are case-sensitive (Moodle and Canvas put mixed-case tokens in page URLs), so
only the parameter *names* are compared case-insensitively.
"""

from __future__ import annotations

import re

# One link-value: <URI-reference> *( ";" link-param )
_LINK = re.compile(r"<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[^;,<]+(?:=\s*(?:\"[^\"]*\"|[^;,]*))?)*)")
_PARAM = re.compile(
    r";\s*(?P<name>[!#$&+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*(?:\"(?P<quoted>[^\"]*)\"|(?P<token>[^;,\s]*)))?"
)


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each relation type (lowercased, RFC 8288 §3.3) to its URL. A link whose
    rel lists several types ("next last") is filed under each. First one wins."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK.finditer(value):
        url = match.group("url").strip()
        for param in _PARAM.finditer(match.group("params")):
            if param.group("name").lower() != "rel":
                continue
            rel_value = (
                param.group("quoted") if param.group("quoted") is not None else param.group("token") or ""
            )
            for rel in rel_value.split():
                links.setdefault(rel.lower(), url)
            break  # RFC 8288: only the first rel parameter counts
    return links


def next_page_url(link_header: str | None) -> str | None:
    return parse_link_header(link_header).get("next")
