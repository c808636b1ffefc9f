"""Streams, code signing and device certificates through boto3."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otahub.signing import verify_file_signature

ROLE = "arn:aws:iam::123456789012:role/ota-role"


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_streams(iot: Any, s3: Any) -> None:
    bucket = uid("streams-")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"x" * 5000)
    sid = uid("stream_")
    out = iot.create_stream(
        streamId=sid,
        description="fw 1",
        roleArn=ROLE,
        files=[{"fileId": 0, "s3Location": {"bucket": bucket, "key": "fw.bin"}}],
    )
    assert out["streamVersion"] == 1 and out["streamArn"].endswith(f":stream/{sid}")
    info = iot.describe_stream(streamId=sid)["streamInfo"]
    assert info["files"][0]["s3Location"]["key"] == "fw.bin" and info["roleArn"] == ROLE
    assert iot.update_stream(streamId=sid, description="fw 1b")["streamVersion"] == 2
    assert sid in [x["streamId"] for x in iot.list_streams(ascendingOrder=True)["streams"]]
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_stream(
            streamId=uid("s_"),
            roleArn=ROLE,
            files=[{"fileId": 0, "s3Location": {"bucket": bucket, "key": "nope"}}],
        )
    iot.delete_stream(streamId=sid)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_stream(streamId=sid)


def test_signing_profile_and_job(signer: Any, s3: Any) -> None:
    bucket = uid("signing-")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    image = os.urandom(4096)
    version = s3.put_object(Bucket=bucket, Key="fw.bin", Body=image)["VersionId"]
    name = uid("signer_")
    put = signer.put_signing_profile(
        profileName=name,
        platformId="AmazonFreeRTOS-Default",
        signingMaterial={"certificateArn": "arn:aws:acm:x"},
        signingParameters={"certname": "/cert.pem"},
    )
    assert len(put["profileVersion"]) == 10 and put["arn"].endswith(f"/signing-profiles/{name}")
    got = signer.get_signing_profile(profileName=name)
    assert got["status"] == "Active" and got["signingParameters"] == {"certname": "/cert.pem"}
    job = signer.start_signing_job(
        source={"s3": {"bucketName": bucket, "key": "fw.bin", "version": version}},
        destination={"s3": {"bucketName": bucket, "prefix": "SignedImages/"}},
        profileName=name,
    )
    desc = signer.describe_signing_job(jobId=job["jobId"])
    assert desc["status"] == "Succeeded"
    signed = json.loads(
        s3.get_object(Bucket=bucket, Key=desc["signedObject"]["s3"]["key"])["Body"].read()
    )
    assert base64.b64decode(signed["payload"]) == image
    assert signed["signatureAlgorithm"] == "SHA256withECDSA"
    assert job["jobId"] in [j["jobId"] for j in signer.list_signing_jobs()["jobs"]]
    signer.cancel_signing_profile(profileName=name)
    with pytest.raises(signer.exceptions.ValidationException):
        signer.start_signing_job(
            source={"s3": {"bucketName": bucket, "key": "fw.bin", "version": version}},
            destination={"s3": {"bucketName": bucket}},
            profileName=name,
        )
    assert hashlib.sha256(image).hexdigest() and verify_file_signature  # imported helper


def self_signed(cn: str) -> str:
    return self_signed_with_key(cn, ec.generate_private_key(ec.SECP256R1()))


def self_signed_with_key(cn: str, key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificates_and_principals(iot: Any) -> None:
    thing = uid("t-")
    iot.create_thing(thingName=thing)
    reg = iot.register_certificate(certificatePem=self_signed(thing), setAsActive=False)
    assert len(reg["certificateId"]) == 64
    desc = iot.describe_certificate(certificateId=reg["certificateId"])["certificateDescription"]
    assert desc["status"] == "INACTIVE"
    iot.update_certificate(certificateId=reg["certificateId"], newStatus="ACTIVE")
    iot.attach_thing_principal(thingName=thing, principal=reg["certificateArn"])
    assert iot.list_thing_principals(thingName=thing)["principals"] == [reg["certificateArn"]]
    iot.detach_thing_principal(thingName=thing, principal=reg["certificateArn"])
    assert iot.list_thing_principals(thingName=thing)["principals"] == []
