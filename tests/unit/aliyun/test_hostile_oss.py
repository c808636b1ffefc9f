"""Hostile OSS upload forms (issue 18): policies that are signed right but say
nothing OSS could apply, multipart bodies that do not parse, and keys no listing
could carry. Each gets OSS's XML error, never a 500, and nothing is stored."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from otahub.aliyun.protocol.oss_policy import OssError, verify_post_form
from otahub.core.services import Services

from .hostile import EXPIRATION, KEY, SECRET, form_for, multipart, policy_of, upload_keys
from .test_rollout_inprocess import Console

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RANGE = "content-length-range"


def refusal(fields: dict[str, str]) -> OssError:
    with pytest.raises(OssError) as info:
        verify_post_form(fields, lookup_secret={KEY: SECRET}.get, now=NOW)
    return info.value


def with_conditions(text: str) -> dict[str, str]:
    """A form whose policy's conditions are this JSON text, verbatim."""
    document = f'{{"expiration": "{EXPIRATION}", "conditions": {text}}}'
    return {"key": "ota/a/b.bin", **policy_of(document)}


@pytest.mark.parametrize(
    ("conditions", "code"),
    [
        (f'[["{RANGE}", null, 10]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", 0, null]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", "abc", 10]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", 0, "abc"]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", 0, 1e308]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", true, 10]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", 20, 10]]', "InvalidPolicyDocument"),
        (f'[["{RANGE}", -1, 10]]', "InvalidPolicyDocument"),
        # Not a number JSON has: refused while decoding, as a malformed policy field.
        (f'[["{RANGE}", 0, 1e309]]', "MalformedPOSTRequest"),
        (f'[["{RANGE}", 0, NaN]]', "MalformedPOSTRequest"),
        (f'[["{RANGE}", 0, 99999999999999999999999]]', "MalformedPOSTRequest"),
        ('[["starts-with", "$key", 5]]', "InvalidPolicyDocument"),
        ('[["eq", "$key", null]]', "InvalidPolicyDocument"),
        ('[["eq", 5, "x"]]', "InvalidPolicyDocument"),
        ('[["in", "$key", "not a list"]]', "InvalidPolicyDocument"),
        ('[["matches", "$key", ".*"]]', "InvalidPolicyDocument"),
        ('[{"key": 5}]', "InvalidPolicyDocument"),
        ('[{"key": "a", "bucket": "b"}]', "InvalidPolicyDocument"),
        ("[5]", "InvalidPolicyDocument"),
        ('["eq"]', "InvalidPolicyDocument"),
        ("[null]", "InvalidPolicyDocument"),
        ("5", "InvalidPolicyDocument"),
        ('{"key": "a"}', "InvalidPolicyDocument"),
        ("null", "InvalidPolicyDocument"),
        ("[" * 5000 + "]" * 5000, "MalformedPOSTRequest"),
        ("[" + "[" * 100 + "]" * 100 + "]", "MalformedPOSTRequest"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_policies_oss_cannot_apply(conditions: str, code: str) -> None:
    error = refusal(with_conditions(conditions))
    assert (error.code, error.status) == (code, 400)
    ET.fromstring(error.to_xml("RID"))  # well-formed XML, whatever the policy held


@pytest.mark.parametrize(
    "document", ["[1]", "[" * 5000 + "]" * 5000, '"policy"', "null"], ids=lambda v: v[:10]
)
def test_a_policy_that_is_not_an_object(document: str) -> None:
    error = refusal({"key": "ota/a/b.bin", **policy_of(document)})
    assert (error.code, error.status) == ("MalformedPOSTRequest", 400)


def test_conditions_still_decide_and_the_size_range_stays_within_the_limit() -> None:
    fields = with_conditions(
        f'[["{RANGE}", 1, 9223372036854775807], ["in", "$key", ["ota/a/b.bin"]],'
        ' ["not-in", "$x-oss-meta-a", ["b"]]]'
    )
    posted = verify_post_form(fields, lookup_secret={KEY: SECRET}.get, now=NOW)
    assert (posted.min_size, posted.max_size) == (1, 1000 * 1024 * 1024)
    denied = refusal({**fields, "x-oss-meta-a": "b"})
    assert (denied.code, denied.status) == ("AccessDenied", 403)
    assert denied.message.startswith("Invalid according to Policy: Policy Condition failed")


# -- the upload endpoint, in process, on SQLite and PostgreSQL ---------------------------


def error_code(text: str) -> str | None:
    return ET.fromstring(text).findtext("Code")


@pytest.mark.parametrize("key", ["ota/a\x00b.bin", "ota/a%00b.bin", "ota/a?b.bin", "ota/\x01.bin"])
async def test_keys_no_listing_could_carry(
    console: Console, services: Services, tmp_path: Path, key: str
) -> None:
    posted = await console.oss.post("/oss", data=form_for(key), files={"file": ("f", b"data")})
    assert posted.status_code == 400
    assert error_code(posted.text) == "InvalidObjectName"
    assert await upload_keys(services, tmp_path) == []
    await console.upload(b"image")  # the bucket still lists and takes uploads
    assert len(await upload_keys(services, tmp_path)) == 1


def _bodies(fields: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """Content-Type and body of multipart requests that do not parse as declared."""
    body = multipart(fields, b"firmware image" * 100, "XYZ")
    declared = "multipart/form-data; boundary="
    return {
        "boundary mismatch": (declared + "ABC", body),
        "cut inside the file": (declared + "XYZ", body[: body.index(b"firmware") + 40]),
        "cut before the file": (declared + "XYZ", body[: len(body) // 3]),
    }


@pytest.mark.parametrize(
    "case", ["boundary mismatch", "cut inside the file", "cut before the file"]
)
async def test_multipart_that_does_not_parse(
    console: Console, services: Services, tmp_path: Path, case: str
) -> None:
    content_type, body = _bodies(form_for("ota/a/b.bin"))[case]
    posted = await console.oss.post("/oss", content=body, headers={"content-type": content_type})
    assert posted.status_code == 400, posted.text
    assert error_code(posted.text) == "MalformedPOSTRequest"
    assert await upload_keys(services, tmp_path) == []
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert blobs == []


async def test_the_form_parses_when_the_boundary_matches(
    console: Console, services: Services, tmp_path: Path
) -> None:
    body = multipart(form_for("ota/a/b.bin"), b"firmware", "XYZ")
    posted = await console.oss.post(
        "/oss", content=body, headers={"content-type": "multipart/form-data; boundary=XYZ"}
    )
    assert posted.status_code == 200, posted.text
    assert await upload_keys(services, tmp_path) == ["ota/a/b.bin"]


async def test_a_forged_policy_is_refused_in_process(console: Console) -> None:
    fields = with_conditions(json.dumps([[RANGE, None, 10]]))
    posted = await console.oss.post("/oss", data=fields, files={"file": ("f", b"data")})
    assert (posted.status_code, error_code(posted.text)) == (400, "InvalidPolicyDocument")


async def test_an_oversized_field_with_a_control_character_in_its_name(
    console: Console, services: Services, tmp_path: Path
) -> None:
    fields = {**form_for("ota/a/b.bin"), "x\x01": "v" * 70_000}
    body = multipart(fields, b"firmware", "XYZ")
    posted = await console.oss.post(
        "/oss", content=body, headers={"content-type": "multipart/form-data; boundary=XYZ"}
    )
    assert (posted.status_code, error_code(posted.text)) == (400, "MalformedPOSTRequest")
    assert await upload_keys(services, tmp_path) == []


@pytest.mark.parametrize("key_id", ["\x00", "LTAI\x00", "nobody"])
async def test_an_access_key_id_no_account_has(
    console: Console, services: Services, tmp_path: Path, key_id: str
) -> None:
    fields = {**form_for("ota/a/b.bin"), "OSSAccessKeyId": key_id}
    posted = await console.oss.post("/oss", data=fields, files={"file": ("f", b"data")})
    assert (posted.status_code, error_code(posted.text)) == (403, "InvalidAccessKeyId")
    assert await upload_keys(services, tmp_path) == []
