"""RPC signature version 1.0 (HMAC-SHA1), timestamp window and nonce replay checks.

The string to sign covers every query and form-body parameter except `Signature`,
including `SignatureType=` with its empty value (specs §1.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from otahub.aliyun.protocol.errors import GatewayError, gateway, missing
from otahub.aliyun.protocol.nonces import NonceStore
from otahub.domain.clock import Clock
from otahub.domain.limits import Refused, check_text

SecretLookup = Callable[[str], "str | Awaitable[str | None] | None"]

MAX_SKEW = timedelta(minutes=15)
SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
MISMATCH_MESSAGE = (
    "Specified signature is not matched with our calculation. server string to sign is:"
)

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)


def pct(value: str) -> str:
    """RFC 3986 percent-encoding, UTF-8, upper-case hex."""
    return urllib.parse.quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{pct(k)}={pct(v)}" for k, v in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{pct('/')}&{pct(canonical_query(params))}"


def sign(sts: str, secret: str) -> str:
    digest = hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_timestamp(text: str) -> datetime:
    """`YYYY-MM-DDThh:mm:ssZ`, optionally with fractional seconds."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        raise gateway("InvalidTimeStamp.Format")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise gateway("InvalidTimeStamp.Format") from None


@dataclass(frozen=True)
class Caller:
    access_key_id: str
    nonce: str
    timestamp: datetime


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise missing(name)
    return value


def check_signature(method: str, params: Mapping[str, str], secret: str) -> None:
    """Raise SignatureDoesNotMatch unless `params["Signature"]` is right for `secret`."""
    sts = string_to_sign(method, params)
    expected = sign(sts, secret)
    given = params.get("Signature", "")
    # bytes, whatever characters were sent: compare_digest refuses non-ASCII str
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass")):
        # The SDK compares the text after the first ':' with its own string to sign
        # and, when equal, tells the user the secret is wrong.
        raise GatewayError("SignatureDoesNotMatch", MISMATCH_MESSAGE + sts, 400)


def check_timestamp(text: str, now: datetime, max_skew: timedelta = MAX_SKEW) -> datetime:
    when = parse_timestamp(text)
    if abs(now - when) > max_skew:
        raise gateway("InvalidTimeStamp.Expired")
    return when


async def _secret_of(lookup: SecretLookup, access_key_id: str) -> str | None:
    try:
        check_text(access_key_id, "AccessKeyId")
    except Refused:
        return None  # no key is named so, and the store cannot even be asked
    result = lookup(access_key_id)
    if result is None or isinstance(result, str):
        return result
    return await result


async def authenticate(
    method: str,
    params: Mapping[str, str],
    *,
    lookup_secret: SecretLookup,
    clock: Clock,
    nonces: NonceStore,
    max_skew: timedelta = MAX_SKEW,
) -> Caller:
    """Check a request's signature parameters; `params` is query plus form body.

    Order: presence, method/version, timestamp, key, signature, then the nonce is
    claimed, so a request with a bad signature never burns a nonce.
    """
    if method.upper() not in ("GET", "POST"):
        raise gateway("UnsupportedHTTPMethod")
    for name in ("Signature", "AccessKeyId", "SignatureNonce", "Timestamp"):
        _required(params, name)
    sig_method = params.get("SignatureMethod", "")
    if sig_method == "":
        raise missing("SignatureMethod")
    if sig_method != SIGNATURE_METHOD:
        raise gateway("InvalidSignatureMethod")
    version = params.get("SignatureVersion")
    if version is not None and version != SIGNATURE_VERSION:
        raise gateway("InvalidSignatureVersion")
    when = check_timestamp(params["Timestamp"], clock.now(), max_skew)
    access_key_id = params["AccessKeyId"]
    secret = await _secret_of(lookup_secret, access_key_id)
    if secret is None:
        raise gateway("InvalidAccessKeyId.NotFound")
    check_signature(method, params, secret)
    nonce = params["SignatureNonce"]
    # Remember the nonce as long as this timestamp stays acceptable.
    if not await nonces.claim(access_key_id, nonce, when + max_skew):
        raise gateway("SignatureNonceUsed")
    return Caller(access_key_id=access_key_id, nonce=nonce, timestamp=when)


@dataclass
class Authenticator:
    """`authenticate` with its collaborators bound, for the request path."""

    lookup_secret: SecretLookup
    clock: Clock
    nonces: NonceStore
    max_skew: timedelta = MAX_SKEW

    async def __call__(self, method: str, params: Mapping[str, str]) -> Caller:
        return await authenticate(
            method,
            params,
            lookup_secret=self.lookup_secret,
            clock=self.clock,
            nonces=self.nonces,
            max_skew=self.max_skew,
        )
