"""GeoReport v2 bodies in both of the spec's formats: JSON and XML (the spec's primary one).

Each endpoint exists as `NAME.json` and `NAME.xml`; the format is the path's suffix, and errors come in
the format that was asked for, so a client parses every answer with the one parser it chose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal
from xml.etree import ElementTree as ET

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES: dict[Format, str] = {"json": "application/json", "xml": "text/xml; charset=utf-8"}


def format_of(path: str) -> Format:
    """The format a path under /open311/ asks for: XML for `*.xml`, else JSON (the hub's default)."""
    return "xml" if path.lower().endswith(".xml") else "json"


# Characters XML 1.0 cannot hold at all (control characters other than tab/newline/CR); shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return _NOT_XML.sub("\ufffd", str(value))


def _append(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(child, key, item)
    elif isinstance(value, list):
        for item in value:
            _append(child, name.removesuffix("s") or "item", item)
    elif value is not None:
        child.text = _text(value)


def to_xml(root: str, item: str, rows: Iterable[Mapping[str, Any]]) -> bytes:
    """`<root><item>field elements</item>...</root>`, as the spec's XML examples have it (None: empty)."""
    top = ET.Element(root)
    for row in rows:
        element = ET.SubElement(top, item)
        for key, value in row.items():
            _append(element, key, value)
    return _document(top)


def _document(top: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode").encode()


def error_body(status: int, description: str, fmt: Format) -> bytes:
    """A GeoReport error: `[{"code", "description"}]`, or `<errors><error>...</error></errors>` in XML."""
    rows = [{"code": status, "description": description}]
    if fmt == "xml":
        return to_xml("errors", "error", rows)
    return json.dumps(rows, ensure_ascii=False).encode()


def object_xml(root: str, fields: Mapping[str, Any]) -> bytes:
    """One object as `<root>field elements</root>` (the service definition's shape)."""
    top = ET.Element(root)
    for key, value in fields.items():
        _append(top, key, value)
    return _document(top)
