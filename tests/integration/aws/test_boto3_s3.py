"""boto3's s3 client, unchanged, against otahub's S3-compatible endpoint."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess


def bucket_name() -> str:
    return f"fw-{uuid.uuid4().hex[:10]}"


def test_objects_ranges_listing_and_versions(s3: Any) -> None:
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    with pytest.raises(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=b)
    assert b in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    data = os.urandom(10_000)
    put = s3.put_object(Bucket=b, Key="images/fw.bin", Body=data, Metadata={"build": "42"})
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key="images/fw.bin")
    assert got["Body"].read() == data and got["Metadata"] == {"build": "42"}
    part = s3.get_object(Bucket=b, Key="images/fw.bin", Range="bytes=100-199")
    assert part["Body"].read() == data[100:200] and part["ContentRange"] == "bytes 100-199/10000"
    with pytest.raises(ClientError) as bad_range:
        s3.get_object(Bucket=b, Key="images/fw.bin", Range="bytes=20000-")
    assert bad_range.value.response["Error"]["Code"] == "InvalidRange"
    assert s3.head_object(Bucket=b, Key="images/fw.bin")["ContentLength"] == 10_000
    s3.put_object(Bucket=b, Key="images/other.bin", Body=b"x")
    s3.put_object(Bucket=b, Key="readme", Body=b"y")
    listing = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [o["Key"] for o in listing["Contents"]] == ["readme"]
    assert listing["CommonPrefixes"] == [{"Prefix": "images/"}]
    page = s3.list_objects_v2(Bucket=b, Prefix="images/", MaxKeys=1)
    assert page["IsTruncated"] and len(page["Contents"]) == 1
    rest = s3.list_objects_v2(
        Bucket=b, Prefix="images/", ContinuationToken=page["NextContinuationToken"]
    )
    assert [o["Key"] for o in rest["Contents"]] == ["images/other.bin"]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=b, Key="nope")
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket=bucket_name())

    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=b, Key="v.bin", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="v.bin", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=b, Key="v.bin", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=b, Key="v.bin")["Body"].read() == b"two"
    s3.delete_object(Bucket=b, Key="v.bin")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=b, Key="v.bin")


def test_multipart_upload_of_200_mb_with_bounded_server_memory(
    s3: Any, server: ServerProcess, tmp_path: Path
) -> None:
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with src.open("wb") as f:
        for _ in range(200):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            f.write(block)
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    before = proc.memory_info().rss
    s3.upload_file(str(src), b, "big.bin")  # boto3 splits it into 8 MB parts
    grown = proc.memory_info().rss - before
    head = s3.head_object(Bucket=b, Key="big.bin")
    assert head["ContentLength"] == 200 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-25")  # 25 parts of 8 MiB
    out = tmp_path / "back.bin"
    s3.download_file(b, "big.bin", str(out))
    back = hashlib.sha256()
    with out.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            back.update(block)
    assert back.hexdigest() == digest.hexdigest()
    assert grown < 100 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MiB"
