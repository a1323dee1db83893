"""RFC 8288 Link headers, as AGS and NRPS use them for paging (rel="next").

URLs are returned exactly as the platform wrote them: paths and query strings
are case-sensitive (Moodle and Canvas put mixed-case tokens in page URLs), so
only the parameter *names* are compared case-insensitively.
"""

from __future__ import annotations


def _split_links(value: str) -> list[tuple[str, str]]:
    """Split a Link header into (url, params) pairs, honouring quoted strings
    (a title may contain commas and semicolons)."""
    links: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        start = value.find("<", i)
        if start == -1:
            break
        end = value.find(">", start)
        if end == -1:
            break
        url = value[start + 1 : end].strip()
        j, quoted = end + 1, False
        while j < n:
            char = value[j]
            if char == '"':
                quoted = not quoted
            elif char == "\\" and quoted:
                j += 1
            elif char == "," and not quoted:
                break
            j += 1
        links.append((url, value[end + 1 : j]))
        i = j + 1
    return links


def _params(text: str) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        semi = text.find(";", i)
        if semi == -1:
            break
        j = semi + 1
        while j < n and text[j] in " \t":
            j += 1
        name_start = j
        while j < n and text[j] not in "=; \t":
            j += 1
        name = text[name_start:j].lower()
        while j < n and text[j] in " \t":
            j += 1
        val = ""
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == '"':
                close = j + 1
                while close < n and text[close] != '"':
                    close += 2 if text[close] == "\\" else 1
                val = text[j + 1 : close].replace("\\", "")
                j = close + 1
            else:
                val_start = j
                while j < n and text[j] not in "; \t":
                    j += 1
                val = text[val_start:j]
        if name:
            params.append((name, val))
        i = j
    return params


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each relation type (lowercased, RFC 8288 §3.3) to its URL. A link whose
    rel lists several types ("next last") is filed under each. First one wins."""
    links: dict[str, str] = {}
    if not value:
        return links
    for url, raw_params in _split_links(value):
        for name, rel_value in _params(raw_params):
            if name != "rel":
                continue
            for rel in rel_value.split():
                links.setdefault(rel.lower(), url)
            break  # RFC 8288: only the first rel parameter counts
    return links


def next_page_url(link_header: str | None) -> str | None:
    return parse_link_header(link_header).get("next")
