from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from otahub.blobs.presign import (
    MAX_EXPIRES_S,
    PresignError,
    PresignVerifier,
    sign_download,
    verify_download,
)
from otahub.domain.clock import FakeClock
from otahub.domain.errors import InvalidRequest, Unauthorized

SECRET = b"s" * 32
KEY = "tenant/1/fw-1.2.3.bin"


def test_round_trip(clock: FakeClock) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock, version="v7")
    assert set(params) == {"device", "expires", "version", "signature"}
    grant = verify_download(SECRET, KEY, params, clock=clock, device_id="dev1")
    assert grant.key == KEY and grant.device_id == "dev1" and grant.version == "v7"
    assert grant.expires == int(clock.now().timestamp()) + 900
    # survives a trip through a URL query
    again = dict(parse_qsl(urlencode(params)))
    assert verify_download(SECRET, KEY, again, clock=clock) == grant


def test_no_version_means_any(clock: FakeClock) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock)
    assert "version" not in params
    assert verify_download(SECRET, KEY, params, clock=clock).version is None
    with pytest.raises(PresignError):
        verify_download(SECRET, KEY, {**params, "version": "v1"}, clock=clock)


@pytest.mark.parametrize("expires_in", [0, 59, 3601, -5])
def test_expiry_outside_60_to_3600_is_refused(clock: FakeClock, expires_in: int) -> None:
    with pytest.raises(InvalidRequest):
        sign_download(SECRET, KEY, device_id="d", clock=clock, expires_in=expires_in)


@pytest.mark.parametrize("expires_in", [60, 3600])
def test_expiry_bounds_are_allowed(clock: FakeClock, expires_in: int) -> None:
    params = sign_download(SECRET, KEY, device_id="d", clock=clock, expires_in=expires_in)
    verify_download(SECRET, KEY, params, clock=clock)


@pytest.mark.parametrize(
    "change",
    [
        {"device": "dev2"},
        {"expires": "99999999999"},
        {"version": "v8"},
        {"signature": "A" * 43},
        {"signature": ""},
        {"expires": "+1"},
        {"expires": "\uff11\uff12"},  # fullwidth digits pass str.isdigit,
    ],
)
def test_tampered_parameters_are_refused(clock: FakeClock, change: dict[str, str]) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock, version="v7")
    with pytest.raises(PresignError):
        verify_download(SECRET, KEY, {**params, **change}, clock=clock)


def test_other_key_secret_or_missing_fields_are_refused(clock: FakeClock) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock)
    with pytest.raises(PresignError):
        verify_download(SECRET, KEY + "x", params, clock=clock)
    with pytest.raises(PresignError):
        verify_download(b"t" * 32, KEY, params, clock=clock)
    for name in params:
        partial = {k: v for k, v in params.items() if k != name}
        with pytest.raises(PresignError):
            verify_download(SECRET, KEY, partial, clock=clock)


def test_wrong_device(clock: FakeClock) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock)
    with pytest.raises(PresignError) as refused:
        verify_download(SECRET, KEY, params, clock=clock, device_id="dev2")
    assert refused.value.reason == "URL made for another device"
    assert isinstance(refused.value, Unauthorized)


def test_expiry_uses_the_injected_clock(clock: FakeClock) -> None:
    params = sign_download(SECRET, KEY, device_id="dev1", clock=clock, expires_in=60)
    clock.advance(59)
    verify_download(SECRET, KEY, params, clock=clock)
    clock.advance(1)
    with pytest.raises(PresignError) as refused:
        verify_download(SECRET, KEY, params, clock=clock)
    assert refused.value.reason == "expired"


def test_a_url_dated_too_far_ahead_is_refused(clock: FakeClock) -> None:
    later = FakeClock(clock.now())
    later.advance(MAX_EXPIRES_S)
    params = sign_download(SECRET, KEY, device_id="dev1", clock=later, expires_in=3600)
    with pytest.raises(PresignError):
        verify_download(SECRET, KEY, params, clock=clock)


def test_short_secret_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        sign_download(b"short", KEY, device_id="d", clock=clock)
    with pytest.raises(ValueError):
        PresignVerifier(b"short", clock)


def test_verifier_object(clock: FakeClock) -> None:
    verifier = PresignVerifier(SECRET, clock)
    params = verifier.sign(KEY, device_id="dev1", expires_in=120)
    assert verifier(KEY, params).device_id == "dev1"
