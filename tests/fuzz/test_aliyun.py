"""The Alibaba RPC face fuzzed from its parameter table (every action, each parameter
typed by its rule), signed with signature V1; and the OSS upload form with hostile
policies and multipart bodies."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import pytest

from otahub.aliyun.protocol.oss_policy import policy_signature
from otahub.aliyun.protocol.rules import rule_for
from otahub.aliyun.protocol.table import ActionSpec, load_table
from tests.fuzz.harness import (
    SECRET,
    Campaign,
    LogWatch,
    RawRequest,
    Server,
    Verdict,
    examples_per_case,
    form_headers,
    multipart,
    seed_world,
    upload_form,
)
from tests.fuzz.strategies import (
    aliyun_faults,
    aliyun_minimal,
    aliyun_params,
    aliyun_violation,
    deep_array,
    examples,
    fill,
)

pytestmark = pytest.mark.fuzz
EXAMPLES = examples_per_case(4)
FAULTS = max(1, examples_per_case(4) // 4)
DESTRUCTIVE = ("Delete", "Cancel", "BatchDelete")


def actions() -> list[ActionSpec]:
    table = load_table()
    names = sorted(table, key=lambda n: (n.startswith(DESTRUCTIVE), n))
    return [table[n] for n in names]


@functools.cache
def generated(action: str, count: int) -> tuple[dict[str, str], ...]:
    return tuple(examples(aliyun_params(load_table()[action], rule_for), count))


async def test_aliyun_rpc(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    names = await seed_world(server)
    campaign = Campaign(server, "Alibaba RPC", watch)
    for action in actions():
        inputs = [
            aliyun_minimal(action, rule_for),
            *aliyun_faults(action, rule_for, FAULTS),
            *generated(action.name, EXAMPLES),
        ]
        for params in inputs:
            filled: dict[str, str] = fill(params, names)
            target = server.aliyun_target({"Action": action.name, **filled})
            refuse = aliyun_violation(action.name, filled, rule_for)
            await campaign.http(RawRequest("POST", target, {}), Verdict(refuse))
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()


# -- the OSS form ------------------------------------------------------------------------------


def encode_policy(document: Any) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


def hostile_policies(key: str) -> list[tuple[str, str]]:
    """Policies signed with the right secret that must still be refused."""
    later = "2099-01-01T00:00:00.000Z"

    def doc(*conditions: Any, expiration: Any = later) -> str:
        return encode_policy({"expiration": expiration, "conditions": list(conditions)})

    eq_key = ["eq", "$key", key]
    return [
        ("content-length-range null", doc(eq_key, ["content-length-range", None, None])),
        ("content-length-range strings", doc(eq_key, ["content-length-range", "0", "9"])),
        ("content-length-range 1e309", doc(eq_key, ["content-length-range", 0, 1e309])),
        ("content-length-range huge", doc(eq_key, ["content-length-range", 0, 2**70])),
        ("starts-with a number", doc(eq_key, ["starts-with", "$key", 5])),
        ("condition of nulls", doc(eq_key, [None, None, None])),
        ("conditions not a list", encode_policy({"expiration": later, "conditions": "x"})),
        ("expiration garbage", doc(eq_key, expiration="garbage")),
        ("expiration a number", doc(eq_key, expiration=1e308)),
        ("policy 5,000 deep", encode_policy(str(deep_array()))),
        ("policy NaN", encode_policy('{"expiration":NaN,"conditions":[]}')),
        ("policy not JSON", encode_policy("{")),
        ("policy not base64", "!!!notbase64"),
        ("policy of NUL", doc(["eq", "$key", "\0"])),
    ]


async def test_oss_form(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    await seed_world(server)
    campaign = Campaign(server, "OSS form", watch)
    form = await upload_form(server)
    form.pop("_url")
    content = b"firmware" * 32

    async def post(
        fields: dict[str, str], refuse: str | None, *, body: bytes | None = None, boundary: str = ""
    ) -> None:
        raw = body if body is not None else multipart(fields, content)
        headers = form_headers(boundary) if boundary else form_headers()
        await campaign.http(RawRequest("POST", "/oss", headers, raw), Verdict(refuse))

    for label, policy in hostile_policies(form["key"]):
        signed = {**form, "policy": policy, "signature": policy_signature(policy, SECRET)}
        await post(signed, label)
    for field, value in [
        ("key", form["key"] + "\x00"),
        ("key", "\x00"),
        ("key", "../../x"),
        ("signature", "é" * 28),
        ("signature", ""),
        ("OSSAccessKeyId", "\x00"),
        ("OSSAccessKeyId", "nobody"),
    ]:
        await post({**form, field: value}, f"{field}={value[:12]!r}")
    # Signed by the account, so allowed: OSS answers 204 for a status it does not know.
    key_condition = [["eq", "$key", form["key"]]]
    far = encode_policy({"expiration": "9999-12-31T23:59:59Z", "conditions": key_condition})
    await post({**form, "policy": far, "signature": policy_signature(far, SECRET)}, None)
    await post({**form, "success_action_status": "9" * 30}, None)
    await post(form, "the body's boundary is not the header's", boundary="otherboundary")
    await post(form, "no file", body=multipart(form, b"")[: -len(b"--\r\n")])
    await post(form, "not multipart", body=b"\x00" * 100, boundary="x")
    await post({k: v for k, v in form.items() if k != "policy"}, "no policy")
    await post(form, None)  # the form as minted: may be accepted
    await post(form, None)  # the same key again
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()
