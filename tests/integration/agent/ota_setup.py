"""Setting up an OTA update with boto3 as a user would: firmware in S3, signed with
the user's own code-signing key (customCodeSigning), sent to things or a group."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from otahub.signing import (
    certificate_to_pem,
    create_code_signing_certificate,
    generate_private_key,
    sign_digest,
)

ROLE = "arn:aws:iam::123456789012:role/ota"


@dataclass(frozen=True)
class Signer:
    key: Any
    certificate_pem: str

    @classmethod
    def new(cls) -> Signer:
        key = generate_private_key("ECDSA")
        return cls(key, certificate_to_pem(create_code_signing_certificate(key, "fw signer")))


def create_update(
    c: dict[str, Any], signer: Signer, firmware: bytes, targets: list[str], **extra: Any
) -> str:
    """Upload, sign and send `firmware`; returns the job id."""
    tag = uuid.uuid4().hex[:8]
    bucket = f"fw-{tag}"
    c["s3"].create_bucket(Bucket=bucket)
    c["s3"].put_object(Bucket=bucket, Key="fw.bin", Body=firmware)
    signature = sign_digest(signer.key, hashlib.sha256(firmware).digest())
    ota_id = f"upd{tag}"
    c["iot"].create_ota_update(
        otaUpdateId=ota_id,
        targets=targets,
        protocols=extra.pop("protocols", ["MQTT", "HTTP"]),
        roleArn=ROLE,
        files=[
            {
                "fileName": "/fw.bin",
                "fileVersion": "2.0.0",
                "fileLocation": {"s3Location": {"bucket": bucket, "key": "fw.bin"}},
                "codeSigning": {
                    "customCodeSigning": {
                        "signature": {"inlineDocument": signature},
                        "certificateChain": {
                            "certificateName": "/certs/signer.pem",
                            "inlineDocument": signer.certificate_pem,
                        },
                        "hashAlgorithm": "SHA256",
                        "signatureAlgorithm": "ECDSA",
                    }
                },
            }
        ],
        **extra,
    )
    info = c["iot"].get_ota_update(otaUpdateId=ota_id)["otaUpdateInfo"]
    assert info["otaUpdateStatus"] == "CREATE_COMPLETE", info.get("errorInfo")
    return str(info["awsIotJobId"])
