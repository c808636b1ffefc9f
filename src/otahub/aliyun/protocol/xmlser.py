"""A generic dict -> XML serializer in the style of Alibaba's XML responses.

A dict becomes child elements; a list under key `K` becomes repeated `<K>` elements
(so `{"SimpleOTATaskInfo": [a, b]}` gives two `<SimpleOTATaskInfo>`); booleans are
`true`/`false`; `None` is left out; datetimes use the `Utc*` format.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from otahub.aliyun.protocol.formats import utc_ms

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_ms(value)
    return _NOT_XML_CHAR.sub("", str(value))


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _append(element, str(key), child)
    elif isinstance(value, list | tuple):
        raise TypeError(f"a list directly inside a list at <{element.tag}>")
    else:
        element.text = text_of(value)


def _append(parent: ET.Element, key: str, value: Any) -> None:
    if value is None:
        return
    if not _NAME.match(key):
        raise ValueError(f"{key!r} is not an XML element name")
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if item is None:
            continue
        _fill(ET.SubElement(parent, key), item)


def to_xml(root: str, data: Mapping[str, Any]) -> bytes:
    element = ET.Element(root)
    _fill(element, data)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body
