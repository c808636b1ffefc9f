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

from starlette.types import Scope

from otahub.aws.wire.errors import AwsError
from otahub.domain.limits import Refused, check_text, parse_int

MAX_SKEW = timedelta(minutes=5)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # what AWS accepts for X-Amz-Expires
_ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[^,\s]+)"
)
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_PAYLOAD_HASH = re.compile(r"[0-9a-f]{64}|UNSIGNED-PAYLOAD|STREAMING-[A-Z0-9-]+")


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


def request_text(scope: Scope, encoding: str = "utf-8") -> tuple[dict[str, str], str, str]:
    """The headers (names lower-cased), raw path and raw query of an ASGI request as
    text. A signature is computed over UTF-8 text, so bytes that are not UTF-8 cannot
    be verified: SignatureError (`encoding="latin-1"` reads any bytes, for routing)."""
    try:
        headers = {k.decode(encoding).lower(): v.decode(encoding) for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode(encoding)
        raw_query = scope.get("query_string", b"").decode(encoding)
    except UnicodeError:
        raise SignatureError(
            "IncompleteSignatureException",
            "The request's headers, path and query must be UTF-8 text",
            "AccessDenied",
        ) from None
    return headers, raw_path, raw_query


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


def _matches(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed signature with whatever was sent."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")


@functools.lru_cache(maxsize=256)  # the requests of one second share their date
def _parse_amz_date(amz_date: str) -> datetime:
    """X-Amz-Date (`20260130T120000Z`) as a UTC datetime; ValueError when it is not one."""
    m = _AMZ_DATE.fullmatch(amz_date)
    if m is None:
        raise ValueError(amz_date)
    year, month, day, hour, minute, second = map(int, m.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class _Claim:
    """What a request says about its own signature, before anything is checked."""

    credential: str
    signed_names: str
    signature: str
    amz_date: str
    expires: int | None  # seconds a presigned URL lives; None for the header form
    payload: str  # the payload hash the canonical request carries


def _signed_payload(headers: Mapping[str, str], body: bytes, *, streamed: bool) -> str:
    """The payload hash of the canonical request. A body read whole (every API but
    S3) is hashed here, and an x-amz-content-sha256 it declares must be that hash.
    S3 streams its bodies: the declared hash is what is signed, and the body is
    checked against it as it streams (see S3App._body)."""
    declared = headers.get("x-amz-content-sha256")
    if not streamed:
        received = _sha256_hex(body)
        if declared is not None and declared != received:
            raise SignatureError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                "XAmzContentSHA256Mismatch",
            )
        return received
    if declared is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "Missing required header for this request: x-amz-content-sha256",
            "InvalidRequest",
        )
    if _PAYLOAD_HASH.fullmatch(declared) is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a valid sha256 "
            "value.",
            "InvalidArgument",
        )
    return declared


def _header_claim(
    auth: str, headers: Mapping[str, str], body: bytes, *, streamed: bool
) -> _Claim:
    m = _AUTH.match(auth)
    if m is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'",
            "AuthorizationHeaderMalformed",
        )
    return _Claim(
        m.group("cred"),
        m.group("signed"),
        m.group("sig"),
        headers.get("x-amz-date", ""),
        None,
        _signed_payload(headers, body, streamed=streamed),
    )


def _query_claim(
    raw_query: str, headers: Mapping[str, str], body: bytes, *, streamed: bool
) -> _Claim:
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    if query.get("X-Amz-Algorithm") != _ALGORITHM:
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
        expires_text = query["X-Amz-Expires"]
    except KeyError:
        raise SignatureError(
            "IncompleteSignatureException",
            "A presigned URL needs X-Amz-Credential, -SignedHeaders, -Signature, "
            "-Date and -Expires",
            "AuthorizationQueryParametersError",
        ) from None
    try:
        expires = parse_int(expires_text, "X-Amz-Expires", 1, MAX_PRESIGN_EXPIRES)
    except Refused:
        raise SignatureError(
            "IncompleteSignatureException",
            f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_EXPIRES}",
            "AuthorizationQueryParametersError",
        ) from None
    # S3 presigns without the payload; the other services hash the (empty) body.
    payload = _UNSIGNED_PAYLOAD if streamed else _signed_payload(headers, body, streamed=False)
    return _Claim(credential, signed_names, signature, amz_date, expires, payload)


def _check_time(when: datetime, now: datetime, claim: _Claim) -> None:
    """The header form holds for MAX_SKEW either side of the server's time; a presigned
    URL from its date (give or take the skew) until it expires. Only differences are
    computed: a date near year 9999 plus a lifetime is past what datetime can hold."""
    if claim.expires is None:
        if abs(now - when) > MAX_SKEW:
            raise SignatureError(
                "InvalidSignatureException",
                f"Signature expired: {claim.amz_date} is more than 5 minutes from the "
                f"server's time {now:%Y%m%dT%H%M%SZ}",
                "RequestTimeTooSkewed",
            )
        return
    if when - now > MAX_SKEW:
        raise SignatureError(
            "InvalidSignatureException",
            "Signature not yet current: the request time is ahead of the server's",
            "AccessDenied",
        )
    lifetime = timedelta(seconds=claim.expires)
    if now - when > lifetime:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: the presigned URL expired at {when + lifetime:%Y%m%dT%H%M%SZ}",
            "AccessDenied",
        )


async def _secret_of(
    lookup: LookupSecret, access_key: str, message: str
) -> tuple[str, str]:
    """(secret, account) of the key; a key that is not even text the store can hold is
    unknown without asking the store."""
    try:
        found = await lookup(check_text(access_key, "the access key"))
    except Refused:
        found = None
    if found is None:
        raise SignatureError("UnrecognizedClientException", message, "InvalidAccessKeyId")
    return found


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
    """Check the request's signature; raise SignatureError (403) when it does not hold.

    `double_encode=False` is S3, which signs its path as sent and streams its body:
    `body` is then not looked at, and the caller checks the streamed body against
    the declared x-amz-content-sha256."""
    streamed = not double_encode
    auth = headers.get("authorization", "")
    if auth.startswith(_ALGORITHM):
        claim = _header_claim(auth, headers, body, streamed=streamed)
    else:
        claim = _query_claim(raw_query, headers, body, streamed=streamed)
    cred = claim.credential.split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignatureException", "Malformed credential scope", "AccessDenied"
        )
    access_key, date, region, service = cred[:4]
    if streamed and service != "s3":
        raise SignatureError(
            "IncompleteSignatureException",
            f"The credential scope names {service}, not s3",
            "AuthorizationHeaderMalformed",
        )
    try:
        when = _parse_amz_date(claim.amz_date)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", "Missing or bad X-Amz-Date", "AccessDenied"
        ) from None
    if date != claim.amz_date[:8]:
        raise SignatureError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
            f"date from HTTP: '{date}' != '{claim.amz_date[:8]}'",
            "AuthorizationHeaderMalformed",
        )
    _check_time(when, now, claim)
    secret, account = await _secret_of(
        lookup, access_key, "The security token included in the request is invalid."
    )
    signed = claim.signed_names.split(";")
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_uri(raw_path, double_encode=double_encode),
            _canonical_query(raw_query),
            canon_headers,
            ";".join(signed),
            claim.payload,
        ]
    )
    to_sign = "\n".join(
        [
            _ALGORITHM,
            claim.amz_date,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = hmac.digest(_key(secret, date, region, service), to_sign.encode(), "sha256").hex()
    if not _matches(expected, claim.signature):
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
        expires = parse_int(query["Expires"], "Expires", 0)
    except (KeyError, Refused):
        raise SignatureError(
            "IncompleteSignatureException",
            "Query-string authentication needs AWSAccessKeyId, Signature and Expires "
            "(seconds since the epoch)",
            "AccessDenied",
        ) from None
    lifetime = expires - now.timestamp()
    if lifetime < 0:
        raise SignatureError("InvalidSignatureException", "Request has expired", "AccessDenied")
    if lifetime > MAX_PRESIGN_EXPIRES + MAX_SKEW.total_seconds():
        raise SignatureError(
            "InvalidSignatureException",
            f"Expires is more than {MAX_PRESIGN_EXPIRES} seconds ahead",
            "AccessDenied",
        )
    secret, account = await _secret_of(
        lookup, access_key, "The AWS Access Key Id you provided does not exist in our records."
    )
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
    if not _matches(expected, signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            "SignatureDoesNotMatch",
        )
    return Signed(access_key, account, "us-east-1", "s3")
