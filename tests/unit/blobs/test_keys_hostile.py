from __future__ import annotations

import pytest

from otahub.blobs.errors import InvalidBlobKey
from otahub.blobs.keys import check_key


@pytest.mark.parametrize("key", ["a\ud800b", "\udfff", "fw/\udc80.bin"])
def test_a_lone_surrogate_is_an_invalid_key_not_an_encoding_error(key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)
