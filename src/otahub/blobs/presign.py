"""Device download URLs: an HMAC-SHA256 over the object, its version, the expiry
and the device, with a server secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from otahub.domain.clock import Clock
from otahub.domain.errors import InvalidRequest, Unauthorized

MIN_EXPIRES_S = 60
MAX_EXPIRES_S = 3600
MIN_SECRET_BYTES = 16

P_DEVICE = "device"
P_VERSION = "version"
P_EXPIRES = "expires"
P_SIGNATURE = "signature"
_DOMAIN = b"otahub-download-v1"


class PresignError(Unauthorized):
    """A download URL is malformed, tampered with, expired or for another device.
    `reason` is for logs; clients only get a 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"download URL refused: {reason}", reason=reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    """What a verified URL allows: `device_id` may fetch `key` at `version`
    (None: any version) until `expires` (epoch seconds)."""

    key: str
    device_id: str
    version: str | None
    expires: int


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the download secret must be at least {MIN_SECRET_BYTES} bytes")


def _mac(secret: bytes, key: str, version: str | None, expires: int, device_id: str) -> str:
    # length-prefixed fields: no choice of values can make two tuples collide
    message = bytearray(_DOMAIN)
    for field in (key, version or "", str(expires), device_id):
        data = field.encode()
        message += b"|%d:" % len(data) + data
    digest = hmac.new(secret, bytes(message), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_download(
    secret: bytes,
    key: str,
    *,
    device_id: str,
    clock: Clock,
    expires_in: int = 900,
    version: str | None = None,
) -> dict[str, str]:
    """The query parameters that let `device_id` fetch `key` for `expires_in` seconds
    (60..3600)."""
    _check_secret(secret)
    if not MIN_EXPIRES_S <= expires_in <= MAX_EXPIRES_S:
        raise InvalidRequest(
            f"a download URL must expire in {MIN_EXPIRES_S}..{MAX_EXPIRES_S} seconds",
            expires_in=expires_in,
        )
    if not device_id:
        raise InvalidRequest("a download URL needs a device id")
    expires = int(clock.now().timestamp()) + expires_in
    params = {P_DEVICE: device_id, P_EXPIRES: str(expires)}
    if version is not None:
        params[P_VERSION] = version
    params[P_SIGNATURE] = _mac(secret, key, version, expires, device_id)
    return params


def verify_download(
    secret: bytes,
    key: str,
    params: Mapping[str, str],
    *,
    clock: Clock,
    device_id: str | None = None,
) -> DownloadGrant:
    """Check the query parameters of a download of `key`; raise PresignError.

    `device_id`, when the caller knows who is asking (a device credential),
    must be the device the URL was made for.
    """
    _check_secret(secret)
    signature = params.get(P_SIGNATURE)
    signed_device = params.get(P_DEVICE)
    expires_text = params.get(P_EXPIRES)
    version = params.get(P_VERSION)
    if not signature or not signed_device or not expires_text:
        raise PresignError("missing signature parameters")
    if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12:
        raise PresignError("malformed expiry")
    expires = int(expires_text)
    try:
        expected = _mac(secret, key, version, expires, signed_device)
    except UnicodeEncodeError:  # a lone surrogate: no URL this server made holds one
        raise PresignError("parameters that are not text") from None
    # bytes, whatever characters were sent: compare_digest refuses non-ASCII str
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
        raise PresignError("bad signature")
    now = clock.now().timestamp()
    if now >= expires:
        raise PresignError("expired")
    if expires - now > MAX_EXPIRES_S + 1:
        raise PresignError("expiry too far ahead")
    if device_id is not None and device_id != signed_device:
        raise PresignError("URL made for another device")
    return DownloadGrant(key, signed_device, version, expires)


class PresignVerifier:
    """`verify_download` bound to a secret and a clock: the download app's verifier."""

    def __init__(self, secret: bytes, clock: Clock) -> None:
        _check_secret(secret)
        self._secret = secret
        self._clock = clock

    def sign(
        self, key: str, *, device_id: str, expires_in: int = 900, version: str | None = None
    ) -> dict[str, str]:
        return sign_download(
            self._secret,
            key,
            device_id=device_id,
            clock=self._clock,
            expires_in=expires_in,
            version=version,
        )

    def __call__(self, key: str, params: Mapping[str, str]) -> DownloadGrant:
        return verify_download(self._secret, key, params, clock=self._clock)
