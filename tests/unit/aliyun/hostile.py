"""Helpers of the hostile-input tests, on the in-process harness of
`test_rollout_inprocess`: signed RPC calls whose answer may be a gateway error,
upload forms carrying policies of the test's own making, and what the upload
bucket holds."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import httpx

from otahub.aliyun import storage
from otahub.aliyun.protocol.oss_policy import policy_signature
from otahub.aliyun.protocol.signature import sign, string_to_sign
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.domain.errors import NotFound

from .test_rollout_inprocess import ACCOUNT, KEY, SECRET, Console

EXPIRATION = "2030-01-01T00:00:00.000Z"  # after the fake clock's now


async def send(console: Console, action: str, **params: str) -> httpx.Response:
    """One RPC call signed as the SDK signs it; the response whatever its status."""
    query = {
        "Action": action,
        "Version": "2018-01-20",
        "Format": "JSON",
        "AccessKeyId": KEY,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureType": "",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": console.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        **params,
    }
    query["Signature"] = sign(string_to_sign("POST", query), SECRET)
    return await console.http.post("/?" + urllib.parse.urlencode(query))


def policy_of(document: str) -> dict[str, str]:
    """The policy and signature fields of a form for this JSON text, signed with the
    account's own secret: the policy is the only thing wrong with it."""
    policy = base64.b64encode(document.encode()).decode()
    return {
        "policy": policy,
        "OSSAccessKeyId": KEY,
        "signature": policy_signature(policy, SECRET),
    }


def form_for(key: str, conditions: list[Any] | None = None) -> dict[str, str]:
    """A well-signed form for `key`; by default its policy lets any key in."""
    document = {
        "expiration": EXPIRATION,
        "conditions": conditions if conditions is not None else [["starts-with", "$key", ""]],
    }
    return {"key": key, **policy_of(json.dumps(document)), "success_action_status": "200"}


def multipart(fields: dict[str, str], content: bytes, boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts)


async def upload_keys(services: Services, tmp_path: Path) -> list[str]:
    """The keys in the account's upload bucket (listing it must work, whatever was posted)."""
    objects = ObjectService(services.ctx, FilesystemBlobStore(tmp_path / "blobs"))
    tenant = (await services.accounts.tenant(ACCOUNT)).id
    try:
        listing = await objects.list(tenant, storage.bucket_name(tenant))
    except NotFound:
        return []
    return [o.key for o in listing.objects]
