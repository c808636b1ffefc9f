"""Where OSS-style uploads live: one bucket per account in otahub's object store,
keys `ota/<hex>/<id>.<suffix>`, and the URLs that name them (`<http base>/oss/<key>`).
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.parse

from otahub.core.services.objects import ObjectService, StoredObject, check_object_key
from otahub.domain.errors import AlreadyExists, InvalidRequest, NotFound
from otahub.domain.ids import opaque_id

OSS_PATH = "/oss"


def bucket_name(tenant_id: int) -> str:
    """Uploads of an account go to its default tenant's bucket, whatever the instance."""
    return f"otahub-oss-{tenant_id}"


def new_key(suffix: str) -> str:
    return f"ota/{secrets.token_hex(8)}/{opaque_id()}.{suffix}"


def host(http_base: str) -> str:
    return f"{http_base.rstrip('/')}{OSS_PATH}"


def key_of_url(url: str) -> str | None:
    """The object key a FirmwareUrl names, or None if it is not one of ours."""
    path = urllib.parse.urlsplit(url).path
    prefix = OSS_PATH + "/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    key = urllib.parse.unquote(path[len(prefix) :])
    return key if _storable(key) else None


def is_upload_key(key: str) -> bool:
    """True if an upload may go under `key`: the store can hold and list it, and the
    FirmwareUrl `host/key` names it again (no `%xx`, `?` or `#` that would change it)."""
    return key_of_url(f"{OSS_PATH}/{key}") == key


def _storable(key: str) -> bool:
    try:
        check_object_key(key)
    except InvalidRequest:
        return False
    return True


async def ensure_bucket(objects: ObjectService, tenant_id: int) -> str:
    name = bucket_name(tenant_id)
    try:
        await objects.get_bucket(tenant_id, name)
    except NotFound:
        with contextlib.suppress(AlreadyExists):  # created meanwhile by another request
            await objects.create_bucket(tenant_id, name)
    return name


async def uploaded(objects: ObjectService, tenant_id: int, url: str) -> StoredObject | None:
    key = key_of_url(url)
    if key is None:
        return None
    try:
        return await objects.get(tenant_id, bucket_name(tenant_id), key)
    except NotFound:
        return None
