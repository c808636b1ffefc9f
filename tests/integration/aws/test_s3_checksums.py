"""How boto3 1.44.5 sends uploads to an http:// endpoint, with its default
`request_checksum_calculation="when_supported"` and with "when_required".

Over plain HTTP botocore never uses aws-chunked or a streaming/trailer checksum
(it only does so over TLS: `httpchecksum.resolve_request_checksum_algorithm`): the
body's SHA-256 is signed in x-amz-content-sha256 and a CRC32 rides in a header. So
otahub verifies the signed payload hash and needs no aws-chunked decoder; a
`STREAMING-*` payload is refused with NotImplemented (see S3App._body)."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import zlib
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.aws.conftest import KEY, SECRET
from tests.integration.server import ServerProcess


class NonSeekable(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left)
        buf[:n] = b"z" * n
        self.left -= n
        return n


@pytest.mark.parametrize("mode", ["when_supported", "when_required"])
def test_uploads_over_http_are_never_aws_chunked(server: ServerProcess, mode: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(request_checksum_calculation=mode),
    )
    sent: list[dict[str, str]] = []
    s3.meta.events.register(
        "before-send",
        lambda request, **_: sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        ),
    )
    bucket = f"ck-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="small", Body=b"hello")
    s3.upload_fileobj(NonSeekable(9 * 1024 * 1024), bucket, "multipart")  # 8 MiB parts
    s3.upload_fileobj(NonSeekable(1000), bucket, "single")
    assert s3.head_object(Bucket=bucket, Key="multipart")["ContentLength"] == 9 * 1024 * 1024
    assert s3.get_object(Bucket=bucket, Key="single")["Body"].read() == b"z" * 1000
    for headers in sent:
        assert "aws-chunked" not in headers.get("content-encoding", "")
        assert not headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
        assert "x-amz-trailer" not in headers
    crc = [h for h in sent if "x-amz-checksum-crc32" in h]
    assert bool(crc) is (mode == "when_supported")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("ChecksumCRC32", "AAAAAA=="),
        ("ChecksumSHA256", base64.b64encode(hashlib.sha256(b"other").digest()).decode()),
        ("ChecksumSHA1", base64.b64encode(hashlib.sha1(b"other").digest()).decode()),
        ("ContentMD5", base64.b64encode(hashlib.md5(b"other").digest()).decode()),
    ],
)
def test_a_body_that_misses_its_declared_checksum_is_refused_and_not_stored(
    s3: Any, param: str, value: str
) -> None:
    bucket = f"bd-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"hello", **{param: value})
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="fw.bin")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    with pytest.raises(ClientError) as part:
        s3.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload, PartNumber=1, Body=b"x" * 10,
            **{param: value},
        )  # fmt: skip
    assert part.value.response["Error"]["Code"] == "BadDigest"


def test_a_body_that_matches_its_declared_checksums_is_stored(s3: Any) -> None:
    bucket = f"ok-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"firmware" * 1000
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=body, ChecksumCRC32=crc, ContentMD5=md5)
    assert s3.get_object(Bucket=bucket, Key="fw.bin")["Body"].read() == body
