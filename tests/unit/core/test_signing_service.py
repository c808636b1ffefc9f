"""Signing profiles and jobs over the object catalog."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.signing import SigningService
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.signing import SigningKeyMaterial, verify_file_signature

IMAGE = os.urandom(100_001)  # not a multiple of 3: the base64 carry is exercised


async def one(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 7000):
        yield data[i : i + 7000]


@pytest.fixture
async def signer(services: Services, tmp_path: Path) -> tuple[int, ObjectService, SigningService]:
    objs = ObjectService(services.ctx, FilesystemBlobStore(tmp_path / "blobs"))
    tenant = (await services.accounts.tenant("1")).id
    await objs.create_bucket(tenant, "src")
    await objs.create_bucket(tenant, "signed")
    return tenant, objs, SigningService(services.ctx, objs)


async def test_profiles_version_on_new_keys(
    signer: tuple[int, ObjectService, SigningService],
) -> None:
    tenant, _, svc = signer
    first = await svc.put_profile(tenant, "fw_signer", platform_id="AmazonFreeRTOS-Default")
    assert len(first.version) == 10 and first.status == "Active"
    same = await svc.put_profile(tenant, "fw_signer", platform_id="AmazonFreeRTOS-Default")
    assert same.version == first.version
    rsa = SigningKeyMaterial.generate("RSA", "imported")
    newer = await svc.put_profile(tenant, "fw_signer", material=rsa)
    assert newer.version != first.version and newer.material.algorithm.value == "RSA"
    assert [p.name for p in await svc.list_profiles(tenant)] == ["fw_signer"]
    await svc.cancel_profile(tenant, "fw_signer")
    assert await svc.list_profiles(tenant) == []
    assert (await svc.get_profile(tenant, "fw_signer")).status == "Canceled"
    with pytest.raises(NotFound):
        await svc.get_profile(tenant, "nope")


async def test_signing_job_signs_the_digest_and_writes_the_signed_object(
    signer: tuple[int, ObjectService, SigningService],
) -> None:
    tenant, objs, svc = signer
    profile = await svc.put_profile(tenant, "fw_signer")
    obj = await objs.put(tenant, "src", "fw.bin", one(IMAGE))
    job = await svc.start_job(
        tenant,
        "fw_signer",
        bucket="src",
        key="fw.bin",
        version=obj.version_id,
        dest_bucket="signed",
        dest_prefix="SignedImages/",
        client_token="tok-1",
    )
    assert job.status == "Succeeded" and job.profile_version == profile.version
    assert job.signature is not None
    digest = hashlib.sha256(IMAGE).hexdigest()
    assert verify_file_signature(job.certificate, job.signature, digest, "ECDSA")
    assert job.signed_object is not None
    signed = await objs.get(tenant, "signed", job.signed_object["key"])
    assert signed.blob_key is not None
    raw = b"".join([c async for c in objs.blobs.open_range(signed.blob_key)])
    doc = json.loads(raw)
    assert doc["rawPayloadSize"] == len(IMAGE)
    assert doc["signatureAlgorithm"] == "SHA256withECDSA"
    assert base64.b64decode(doc["payload"]) == IMAGE
    again = await svc.start_job(
        tenant,
        "fw_signer",
        bucket="src",
        key="fw.bin",
        version=None,
        dest_bucket="signed",
        client_token="tok-1",
    )
    assert again.id == job.id  # the same client token names the same job
    assert [j.id for j in await svc.list_jobs(tenant)] == [job.id]


async def test_signing_refusals(signer: tuple[int, ObjectService, SigningService]) -> None:
    tenant, objs, svc = signer
    await svc.put_profile(tenant, "p1")
    with pytest.raises(NotFound):
        await svc.start_job(
            tenant, "p1", bucket="src", key="missing", version=None, dest_bucket="signed"
        )
    await objs.put(tenant, "src", "fw.bin", one(b"x"))
    await svc.cancel_profile(tenant, "p1")
    with pytest.raises(InvalidRequest):
        await svc.start_job(
            tenant, "p1", bucket="src", key="fw.bin", version=None, dest_bucket="signed"
        )
