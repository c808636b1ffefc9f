"""The OSS-style POST policy: mint, verify, expiry, tampering."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from otahub.aliyun.protocol.oss_policy import (
    MAX_UPLOAD_BYTES,
    OssError,
    PostedForm,
    UploadForm,
    mint_upload_form,
    policy_signature,
    verify_post_form,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECRETS = {"OSSAK": "oss-secret"}
KEY = "ota/ab12/fw-1.bin"


def mint(
    *,
    key: str = KEY,
    secret: str = "oss-secret",
    now: datetime = NOW,
    max_size: int = MAX_UPLOAD_BYTES,
) -> UploadForm:
    return mint_upload_form(
        host="http://127.0.0.1:8080/oss",
        key=key,
        access_key_id="OSSAK",
        secret=secret,
        now=now,
        max_size=max_size,
    )


def fields_of(form: UploadForm) -> dict[str, str]:
    # The order and the case of the official sample, before `file`.
    return {
        "key": form.key,
        "policy": form.policy,
        "OSSAccessKeyId": form.access_key_id,
        "signature": form.signature,
        "success_action_status": "200",
    }


def verify(fields: dict[str, str], now: datetime = NOW) -> PostedForm:
    return verify_post_form(fields, lookup_secret=SECRETS.get, now=now)


def expect(fields: dict[str, str], code: str, now: datetime = NOW) -> OssError:
    with pytest.raises(OssError) as info:
        verify(fields, now)
    assert info.value.code == code
    return info.value


def test_ota_data_fields() -> None:
    data = mint().ota_data()
    assert set(data) == {
        "Host",
        "Key",
        "Policy",
        "OSSAccessKeyId",
        "Signature",
        "FirmwareUrl",
        "ObjectStorage",
        "UtcCreate",
    }
    assert data["FirmwareUrl"] == f"http://127.0.0.1:8080/oss/{KEY}"
    assert data["ObjectStorage"] == "OSS"
    assert data["UtcCreate"] == "2026-01-01T12:00:00.000Z"
    device_list = mint().device_list_data()
    assert "AccessKeyId" in device_list and "OSSAccessKeyId" not in device_list
    assert device_list["FileUrl"] == data["FirmwareUrl"]


def test_policy_document() -> None:
    form = mint()
    document = json.loads(base64.b64decode(form.policy))
    assert document["expiration"] == "2026-01-01T12:01:00.000Z"
    assert ["eq", "$key", KEY] in document["conditions"]
    assert ["content-length-range", 0, MAX_UPLOAD_BYTES] in document["conditions"]
    assert form.signature == policy_signature(form.policy, "oss-secret")


def test_round_trip() -> None:
    posted = verify(fields_of(mint()))
    assert posted.key == KEY
    assert posted.success_status == 200
    assert posted.max_size == MAX_UPLOAD_BYTES


def test_field_names_ignore_case() -> None:
    fields = {k.upper(): v for k, v in fields_of(mint()).items()}
    assert verify(fields).key == KEY


def test_default_success_status_is_204() -> None:
    fields = fields_of(mint())
    del fields["success_action_status"]
    assert verify(fields).success_status == 204
    fields["success_action_status"] = "302"
    assert verify(fields).success_status == 204


def test_expired_policy() -> None:
    error = expect(fields_of(mint()), "AccessDenied", NOW + timedelta(seconds=61))
    assert error.message == "Invalid according to Policy: Policy expired"
    assert error.status == 403
    root = ET.fromstring(error.to_xml("RID"))
    assert (root.tag, root.findtext("Code"), root.findtext("RequestId")) == (
        "Error",
        "AccessDenied",
        "RID",
    )


def test_other_key_fails_the_condition() -> None:
    fields = fields_of(mint())
    fields["key"] = "ota/elsewhere.bin"
    error = expect(fields, "AccessDenied")
    assert "Policy Condition failed" in error.message


def test_tampered_policy_or_signature() -> None:
    fields = fields_of(mint())
    other = mint(key="ota/other.bin", now=NOW + timedelta(days=1))
    expect({**fields, "policy": other.policy}, "SignatureDoesNotMatch")
    expect({**fields, "signature": mint(secret="nope").signature}, "SignatureDoesNotMatch")


def test_forged_policy_with_right_secret_is_still_checked() -> None:
    # A policy signed with the right secret but carrying garbage is malformed, not accepted.
    policy = base64.b64encode(b"not json").decode()
    fields = {
        **fields_of(mint()),
        "policy": policy,
        "signature": policy_signature(policy, "oss-secret"),
    }
    expect(fields, "MalformedPOSTRequest")


@pytest.mark.parametrize("name", ["key", "policy", "OSSAccessKeyId", "signature"])
def test_missing_field_is_malformed(name: str) -> None:
    fields = fields_of(mint())
    del fields[name]
    error = expect(fields, "MalformedPOSTRequest")
    assert error.status == 400


def test_unknown_access_key() -> None:
    expect({**fields_of(mint()), "OSSAccessKeyId": "WHO"}, "InvalidAccessKeyId")


def test_size_limit() -> None:
    posted = verify(fields_of(mint(max_size=1000)))
    posted.check_size(1000)
    with pytest.raises(OssError) as info:
        posted.check_size(1001)
    assert info.value.code == "EntityTooLarge"
