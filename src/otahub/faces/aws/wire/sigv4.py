"""Verify AWS Signature Version 4 as boto3 signs rest-json requests.

The canonical URI is the path as received, percent-encoded once more (boto3 signs
the already-encoded path encoded again); the credential scope's service name says
which API the request is for (iot and iot-jobs-data share paths).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from otahub.faces.aws.wire.errors import AwsError

MAX_SKEW = timedelta(minutes=5)
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})"
)

LookupSecret = Callable[[str], Awaitable[tuple[str, str] | None]]  # -> (secret, account)


@dataclass(frozen=True)
class Signed:
    access_key_id: str
    account_id: str
    region: str
    service: str


def _canonical_uri(raw_path: str, *, double_encode: bool) -> str:
    # S3 signs the path as sent; every other service encodes it once more.
    return (quote(raw_path, safe="/~") if double_encode else raw_path) or "/"


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        if key == "X-Amz-Signature":
            continue
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


async def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: LookupSecret,
    now: datetime,
    *,
    double_encode: bool = True,
) -> Signed:
    """Check the request's signature; raise AwsError (403) when it does not hold."""
    auth = headers.get("authorization", "")
    m = _AUTH.match(auth)
    if m is None:
        raise AwsError(
            "MissingAuthenticationTokenException", "Request is missing Authentication Token", 403
        )
    cred = m.group("cred").split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise AwsError("IncompleteSignatureException", "Malformed credential scope", 403)
    access_key, date, region, service = cred[:4]
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AwsError("IncompleteSignatureException", "Missing or bad X-Amz-Date", 403) from None
    if abs(now - when) > MAX_SKEW:
        raise AwsError(
            "InvalidSignatureException",
            "Signature expired: the request time is too far from the server's",
            403,
        )
    found = await lookup(access_key)
    if found is None:
        raise AwsError(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            403,
        )
    secret, account = found
    signed = m.group("signed").split(";")
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_uri(raw_path, double_encode=double_encode),
            _canonical_query(raw_query),
            canon_headers,
            ";".join(signed),
            payload,
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(
        _key(secret, date, region, service), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, m.group("sig")):
        raise AwsError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )
    return Signed(access_key, account, region, service)


def scope_service(headers: Mapping[str, str]) -> str | None:
    """The service named in the credential scope, before anything is verified."""
    m = _AUTH.match(headers.get("authorization", ""))
    if m is None:
        return None
    parts = m.group("cred").split("/")
    return parts[3] if len(parts) == 5 else None
