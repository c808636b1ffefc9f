"""Tags: key-value labels on a resource, and the limits every face enforces alike
(AWS IoT's: botocore's `Tag` shape and the tagging rules of its documentation)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from otahub.domain.errors import InvalidRequest, LimitExceeded
from otahub.domain.limits import Refused, check_text

MAX_TAGS = 50  # per resource
MAX_KEY = 128
MAX_VALUE = 256
MAX_RESOURCE = 2048  # what the store keeps of a resource's name
RESERVED_PREFIX = "aws:"  # in any case: AWS keeps these keys for itself
KEY_PUNCTUATION = frozenset("_.:/=+-@")


@dataclass(frozen=True)
class Tag:
    key: str
    value: str = ""


def _key_char(c: str) -> bool:
    """Letters, separators, digits (`\\p{L}\\p{Z}\\p{N}`) and a little punctuation."""
    return unicodedata.category(c)[0] in "LZN" or c in KEY_PUNCTUATION


def check_tags(tags: Sequence[Tag]) -> None:
    """Tags that a resource may be given: raises InvalidRequest or LimitExceeded."""
    if len(tags) > MAX_TAGS:
        raise LimitExceeded(f"a resource has at most {MAX_TAGS} tags")
    keys = [t.key for t in tags]
    if len(set(keys)) != len(keys):
        raise InvalidRequest("a tag key is given twice")
    for t in tags:
        if not 1 <= len(t.key) <= MAX_KEY:
            raise InvalidRequest(f"a tag key has 1 to {MAX_KEY} characters")
        if not all(_key_char(c) for c in t.key):
            raise InvalidRequest(f"tag key {t.key[:MAX_KEY]!r} has a character keys cannot hold")
        if t.key.lower().startswith(RESERVED_PREFIX):
            raise InvalidRequest(f"tag keys starting with {RESERVED_PREFIX} are reserved")
        if len(t.value) > MAX_VALUE:
            raise InvalidRequest(f"a tag value has at most {MAX_VALUE} characters")
        try:
            check_text(t.value, "a tag value")
        except Refused as exc:
            raise InvalidRequest(str(exc)) from None


def check_resource(resource: str) -> None:
    if not 1 <= len(resource) <= MAX_RESOURCE:
        raise InvalidRequest(f"a tagged resource's name has 1 to {MAX_RESOURCE} characters")
