from __future__ import annotations

import pytest

from otahub.blobs.errors import InvalidBlobKey
from otahub.blobs.keys import check_key


@pytest.mark.parametrize(
    "key", ["fw.bin", "tenant/1/pkg/fw-1.2.3.bin", "a b/c@d=e+f~g", "ü/固件.bin"]
)
def test_safe_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        ".incoming/x",
        "a/.meta",
        "a\\..\\b",
        "a\x00b",
        "a\nb",
        "x" * 1025,
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)
