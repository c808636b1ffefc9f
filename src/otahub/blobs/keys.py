"""Blob keys: safe relative paths, the same rules for every backend."""

from __future__ import annotations

from otahub.blobs.errors import InvalidBlobKey

MAX_KEY_LENGTH = 1024


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative path, else raise InvalidBlobKey.

    Components are separated by "/"; none may be empty or start with "." (which
    also rules out "." and ".."), and no control character, backslash or lone
    surrogate (which no file name can hold) may appear, so a key can never leave
    the store's root nor hit its hidden working directories.
    """
    # surrogatepass: a lone surrogate is measured here and refused just below
    if not key or len(key.encode(errors="surrogatepass")) > MAX_KEY_LENGTH:
        raise InvalidBlobKey(f"a blob key must be 1..{MAX_KEY_LENGTH} bytes", key=key)
    if any(ord(ch) < 0x20 or ch in "\\\x7f" or "\ud800" <= ch <= "\udfff" for ch in key):
        raise InvalidBlobKey(
            "a blob key may not hold control characters, lone surrogates or '\\'", key=key
        )
    for part in key.split("/"):
        if not part or part.startswith("."):
            raise InvalidBlobKey(
                "a blob key's path components may not be empty or start with '.'", key=key
            )
    return key
