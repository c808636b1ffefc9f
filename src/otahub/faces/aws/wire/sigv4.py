"""Verify AWS Signature Version 4 as boto3 signs rest-json requests, in the
Authorization header or in the query string of a presigned URL.

The canonical URI is the path as received, percent-encoded once more (boto3 signs
the already-encoded path encoded again); the credential scope's service name says
which API the request is for (iot and iot-jobs-data share paths).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

from otahub.faces.aws.wire.errors import AwsError

MAX_SKEW = timedelta(minutes=5)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # what AWS accepts for X-Amz-Expires
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})"
)


class SignatureError(AwsError):
    """A signature that does not hold; `s3_code` is what S3 calls the same failure."""

    def __init__(self, code: str, message: str, s3_code: str) -> None:
        super().__init__(code, message, 403)
        self.s3_code = s3_code


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


@functools.lru_cache(maxsize=1024)
def _key(secret: str, date: str, region: str, service: str) -> bytes:
    """The signing key of a credential scope: four HMACs, the same all day for one
    secret, date, region and service, so kept (by the secret itself: a changed
    secret gets a key of its own). Only a request whose date passed the skew check
    gets here, and its signature is checked against this key on every request."""
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


@functools.lru_cache(maxsize=256)  # the requests of one second share their date
def _parse_amz_date(amz_date: str) -> datetime:
    """X-Amz-Date (`20260130T120000Z`) as a UTC datetime; ValueError when it is not one."""
    m = _AMZ_DATE.fullmatch(amz_date)
    if m is None:
        raise ValueError(amz_date)
    year, month, day, hour, minute, second = map(int, m.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


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
    """Check the request's signature; raise SignatureError (403) when it does not hold."""
    auth = headers.get("authorization", "")
    m = _AUTH.match(auth)
    expires: int | None = None
    if m is not None:
        credential, signed_names, signature = m.group("cred"), m.group("signed"), m.group("sig")
        amz_date = headers.get("x-amz-date", "")
        payload = headers.get("x-amz-content-sha256") or _sha256_hex(body)
    else:
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise SignatureError(
                "MissingAuthenticationTokenException",
                "Request is missing Authentication Token",
                "AccessDenied",
            )
        try:
            credential = query["X-Amz-Credential"]
            signed_names = query["X-Amz-SignedHeaders"]
            signature = query["X-Amz-Signature"]
            amz_date = query["X-Amz-Date"]
            expires = int(query["X-Amz-Expires"])
        except (KeyError, ValueError):
            raise SignatureError(
                "IncompleteSignatureException",
                "A presigned URL needs X-Amz-Credential, -SignedHeaders, -Signature, "
                "-Date and -Expires",
                "AuthorizationQueryParametersError",
            ) from None
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise SignatureError(
                "IncompleteSignatureException",
                f"X-Amz-Expires must be 1 to {MAX_PRESIGN_EXPIRES}",
                "AuthorizationQueryParametersError",
            )
        # S3 presigns without the payload; the other services hash the (empty) body.
        payload = "UNSIGNED-PAYLOAD" if not double_encode else _sha256_hex(body)
    cred = credential.split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignatureException", "Malformed credential scope", "AccessDenied"
        )
    access_key, date, region, service = cred[:4]
    try:
        when = _parse_amz_date(amz_date)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", "Missing or bad X-Amz-Date", "AccessDenied"
        ) from None
    if date != amz_date[:8]:
        raise SignatureError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
            f"date from HTTP: '{date}' != '{amz_date[:8]}'",
            "AuthorizationHeaderMalformed",
        )
    if expires is not None:
        if now > when + timedelta(seconds=expires):
            raise SignatureError(
                "InvalidSignatureException",
                f"Signature expired: the presigned URL expired at "
                f"{(when + timedelta(seconds=expires)):%Y%m%dT%H%M%SZ}",
                "AccessDenied",
            )
        if when - now > MAX_SKEW:
            raise SignatureError(
                "InvalidSignatureException",
                "Signature not yet current: the request time is ahead of the server's",
                "AccessDenied",
            )
    elif abs(now - when) > MAX_SKEW:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is more than 5 minutes from the server's "
            f"time {now:%Y%m%dT%H%M%SZ}",
            "RequestTimeTooSkewed",
        )
    found = await lookup(access_key)
    if found is None:
        raise SignatureError(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "InvalidAccessKeyId",
        )
    secret, account = found
    signed = signed_names.split(";")
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
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
    expected = hmac.digest(_key(secret, date, region, service), to_sign.encode(), "sha256").hex()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            "SignatureDoesNotMatch",
        )
    return Signed(access_key, account, region, service)


def scope_service(headers: Mapping[str, str], raw_query: str = "") -> str | None:
    """The service named in the credential scope, before anything is verified."""
    m = _AUTH.match(headers.get("authorization", ""))
    if m is not None:
        credential = m.group("cred")
    elif "X-Amz-Credential=" in raw_query:
        credential = dict(parse_qsl(raw_query)).get("X-Amz-Credential", "")
    else:
        return None
    parts = credential.split("/")
    return parts[3] if len(parts) == 5 else None


# -- S3's legacy query-string signature (what boto3's s3 client presigns with when
# it is not told `signature_version="s3v4"`): HMAC-SHA1 over the method, two
# headers, the expiry, the x-amz- values and the resource. -----------------------------

_V2_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "cors",
        "defaultObjectAcl",
        "location",
        "logging",
        "partNumber",
        "policy",
        "requestPayment",
        "torrent",
        "versioning",
        "versionId",
        "versions",
        "website",
        "uploads",
        "uploadId",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "delete",
        "lifecycle",
        "tagging",
        "restore",
        "storageClass",
        "notification",
        "replication",
        "analytics",
        "metrics",
        "inventory",
        "select",
        "select-type",
        "object-lock",
    ]
)


def is_v2_presigned(raw_query: str) -> bool:
    return "AWSAccessKeyId=" in raw_query and "Signature=" in raw_query


async def verify_v2_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    lookup: LookupSecret,
    now: datetime,
) -> Signed:
    """Check an S3 presigned URL of signature version 2 (HmacV1 query auth)."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    query = dict(pairs)
    try:
        access_key, signature = query["AWSAccessKeyId"], query["Signature"]
        expires = int(query["Expires"])
    except (KeyError, ValueError):
        raise SignatureError(
            "IncompleteSignatureException",
            "Query-string authentication needs AWSAccessKeyId, Signature and Expires",
            "AccessDenied",
        ) from None
    if now.timestamp() > expires:
        raise SignatureError("InvalidSignatureException", "Request has expired", "AccessDenied")
    found = await lookup(access_key)
    if found is None:
        raise SignatureError(
            "UnrecognizedClientException",
            "The AWS Access Key Id you provided does not exist in our records.",
            "InvalidAccessKeyId",
        )
    secret, account = found
    amz = sorted((k.lower(), v) for k, v in pairs if k.lower().startswith("x-amz-"))
    resource = raw_path
    interesting = sorted(
        (k, v)
        for k, v in (p.split("=", 1) if "=" in p else (p, None) for p in raw_query.split("&"))
        if k in _V2_SUBRESOURCES
    )
    if interesting:
        resource += "?" + "&".join(k if v is None else f"{k}={unquote(v)}" for k, v in interesting)
    to_sign = "\n".join(
        [
            method.upper(),
            query.get("content-md5", headers.get("content-md5", "")),
            query.get("content-type", headers.get("content-type", "")),
            str(expires),
            *(f"{k}:{v}" for k, v in amz),
            resource,
        ]
    )
    expected = base64.b64encode(
        hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            "SignatureDoesNotMatch",
        )
    return Signed(access_key, account, "us-east-1", "s3")
