"""Alibaba rate limits, nonce store bounds, and the core-error mapping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aliyunsdkiot.request.v20180120.QueryOTAJobRequest import QueryOTAJobRequest

from otahub.aliyun.protocol.codes import BY_CODE, BusinessCode
from otahub.aliyun.protocol.errormap import from_core, internal_error
from otahub.aliyun.protocol.errors import BusinessError, GatewayError
from otahub.aliyun.protocol.frontdoor import receive
from otahub.aliyun.protocol.nonces import MemoryNonceStore
from otahub.aliyun.protocol.ratelimits import ApiRateLimiter
from otahub.domain import errors as core
from otahub.domain.clock import FakeClock

from .sdk import authenticator, real_now_clock, sign_offline


def burst(limiter: ApiRateLimiter, action: str, account: str = "acct") -> int:
    allowed = 0
    for _ in range(100):
        try:
            limiter.check(account, action)
            allowed += 1
        except GatewayError as error:
            assert (error.code, error.http_status) == ("Throttling.User", 400)
            assert error.message == "Request was denied due to user flow control."
    return allowed


@pytest.mark.parametrize(
    ("action", "qps"),
    [
        ("CreateOTAVerifyJob", 10),
        ("QueryOTAJob", 10),
        ("CreateOTAStaticUpgradeJob", 20),
        ("CreateOTADynamicUpgradeJob", 20),
        ("ConfirmOTATask", 20),
        ("CancelOTATaskByJob", 5),
    ],
)
def test_default_limits(action: str, qps: int) -> None:
    clock = FakeClock()
    limiter = ApiRateLimiter(clock)
    assert burst(limiter, action) == qps
    assert burst(limiter, action, "other-account") == qps
    clock.advance(1)
    assert burst(limiter, action) == qps


def test_overrides_and_disable() -> None:
    clock = FakeClock()
    assert burst(ApiRateLimiter(clock, overrides={"QueryOTAJob": 3}), "QueryOTAJob") == 3
    assert burst(ApiRateLimiter(clock, default_qps=2), "QueryOTAFirmware") == 2
    assert burst(ApiRateLimiter(clock, enabled=False), "QueryOTAJob") == 100


async def test_front_door_throttles_after_signature() -> None:
    clock = real_now_clock()
    auth = authenticator(clock)
    limiter = ApiRateLimiter(clock, overrides={"QueryOTAJob": 1})
    codes = []
    for _ in range(2):
        request = QueryOTAJobRequest()
        request.set_JobId("j")
        signed = sign_offline(request)
        try:
            received = await receive(
                signed.method,
                signed.query,
                signed.body,
                signed.content_type,
                authenticator=auth,
                limiter=limiter,
            )
            codes.append(received.call.params["JobId"])
        except GatewayError as error:
            codes.append(error.code)
    assert codes == ["j", "Throttling.User"]


def test_nonce_store_forgets_after_expiry() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock)
    expires = clock.now() + timedelta(minutes=15)
    assert store.claim_now("A", "n", expires)
    clock.advance(minutes=14)
    assert not store.claim_now("A", "n", expires)
    clock.advance(minutes=2)
    assert store.claim_now("A", "n", clock.now() + timedelta(minutes=15))
    assert len(store) == 1


def test_nonce_store_is_bounded() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock, max_entries=100)
    for i in range(1000):
        assert store.claim_now("A", f"n{i}", clock.now() + timedelta(minutes=15, seconds=i))
    assert len(store) == 100
    assert not store.claim_now("A", "n999", clock.now() + timedelta(minutes=15))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (core.NotFound("x"), "iot.common.ResourceNotFound"),
        (core.AlreadyExists("x"), "iot.common.ResourceAlreadyExists"),
        (core.InvalidRequest("x"), "iot.system.IllegalRequest"),
        (core.LimitExceeded("x"), "iot.common.LimitExceeded"),
        (core.Conflict("x"), "iot.common.ResourceInUse"),
        (core.VersionConflict("x"), "iot.common.ConcurrentModification"),
        (core.InvalidStateTransition("x"), "iot.common.InvalidStatus"),
        (core.OtahubError("x"), "iot.system.SystemException"),
    ],
)
def test_core_errors_default_to_business_codes(error: core.OtahubError, code: str) -> None:
    mapped = from_core(error)
    assert isinstance(mapped, BusinessError)
    assert (mapped.code, mapped.message) == (code, "x")


def test_core_errors_default_to_gateway_codes() -> None:
    throttled = from_core(core.Throttled("slow down"))
    assert isinstance(throttled, GatewayError)
    assert (throttled.code, throttled.http_status) == ("Throttling.User", 400)
    assert throttled.message == "Request was denied due to user flow control."
    denied = from_core(core.Unauthorized("no"))
    assert isinstance(denied, GatewayError)
    assert (denied.code, denied.http_status) == ("Forbidden.RAM", 403)
    assert internal_error().http_status == 500


def test_raiser_picks_the_code() -> None:
    by_enum = from_core(core.NotFound("job j1", code=BusinessCode.JOB_NOT_FOUND))
    assert (by_enum.code, by_enum.message) == ("iot.ota.JobNotFound", "job j1")
    by_text = from_core(core.InvalidStateTransition("", code="iot.ota.TaskStatusError"))
    assert by_text.message == BusinessCode.TASK_STATUS_ERROR.message
    custom = from_core(core.InvalidRequest("m", code="iot.ota.SomethingNew"))
    assert isinstance(custom, BusinessError) and custom.code == "iot.ota.SomethingNew"
    gw = from_core(core.InvalidRequest("bad", code="InvalidParameter"))
    assert isinstance(gw, GatewayError) and gw.http_status == 400 and gw.message == "bad"


def test_business_codes_are_unique_and_well_formed() -> None:
    assert len(BY_CODE) == len(BusinessCode)
    for member in BusinessCode:
        assert member.code.startswith("iot.") and member.message.endswith(".")


def test_codes_are_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "aliyun-errors.md").read_text()
    for member in BusinessCode:
        assert f"`{member.code}`" in doc, member.code
