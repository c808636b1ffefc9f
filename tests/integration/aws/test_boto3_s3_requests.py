"""boto3's s3 client, unchanged, on the request forms the S3 endpoint checks closely:
a bucket's configuration document, ListBuckets pages, GetObject by part number."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_create_bucket_with_a_location_and_list_buckets_by_page(s3: Any) -> None:
    prefix = f"fwp-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(3)]
    for name in names:
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    pages = s3.get_paginator("list_buckets").paginate(
        Prefix=prefix, PaginationConfig={"PageSize": 2}
    )
    seen = [[b["Name"] for b in page["Buckets"]] for page in pages]
    assert seen == [names[:2], names[2:]]


def test_get_object_by_part_number(s3: Any) -> None:
    bucket = f"fwp-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"image")
    assert s3.get_object(Bucket=bucket, Key="fw.bin", PartNumber=1)["Body"].read() == b"image"
    assert s3.head_object(Bucket=bucket, Key="fw.bin", PartNumber=1)["ContentLength"] == 5
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="fw.bin", PartNumber=2)
    assert err.value.response["Error"]["Code"] == "InvalidPartNumber"
