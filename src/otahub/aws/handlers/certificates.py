"""Device certificates and the things they are attached to."""

from __future__ import annotations

from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import single_page, thing
from otahub.aws.wire.app import AwsContext
from otahub.domain.errors import InvalidRequest


def _cert_id(arn: str) -> str:
    if ":cert/" not in arn:
        raise InvalidRequest(f"{arn} is not a certificate ARN")
    return arn.split(":cert/", 1)[1]


@handles("iot", "CreateKeysAndCertificate")
async def create_keys_and_certificate(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    if ctx.deps.issue_certificate is None:
        raise InvalidRequest("otahub has no certificate authority configured")
    issued = ctx.deps.issue_certificate()
    cert = await ctx.services.certificates.register(
        ctx.tenant_id, issued.certificate_pem, active=bool(p.get("setAsActive"))
    )
    return {
        "certificateArn": ctx.arn(f"cert/{cert.id}"),
        "certificateId": cert.id,
        "certificatePem": issued.certificate_pem,
        "keyPair": {"PublicKey": issued.public_key_pem, "PrivateKey": issued.private_key_pem},
    }


@handles("iot", "RegisterCertificate")
async def register_certificate(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    active = p.get("setAsActive") or p.get("status") == "ACTIVE"
    cert = await ctx.services.certificates.register(
        ctx.tenant_id, p["certificatePem"], active=bool(active)
    )
    return {"certificateArn": ctx.arn(f"cert/{cert.id}"), "certificateId": cert.id}


@handles("iot", "DescribeCertificate")
async def describe_certificate(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    cert = await ctx.services.certificates.get(ctx.tenant_id, p["certificateId"])
    return {
        "certificateDescription": {
            "certificateArn": ctx.arn(f"cert/{cert.id}"),
            "certificateId": cert.id,
            "status": cert.status,
            "certificatePem": cert.pem,
            "ownedBy": ctx.account_id,
            "creationDate": cert.created_at,
            "lastModifiedDate": cert.updated_at,
        }
    }


@handles("iot", "UpdateCertificate")
async def update_certificate(ctx: AwsContext, p: dict[str, Any]) -> None:
    await ctx.services.certificates.set_status(ctx.tenant_id, p["certificateId"], p["newStatus"])


@handles("iot", "AttachThingPrincipal")
async def attach(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await thing(ctx, p["thingName"])
    await ctx.services.certificates.attach(
        ctx.tenant_id,
        _cert_id(p["principal"]),
        d.id,
        exclusive=p.get("thingPrincipalType") == "EXCLUSIVE_THING",
    )


@handles("iot", "DetachThingPrincipal")
async def detach(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await thing(ctx, p["thingName"])
    await ctx.services.certificates.detach(ctx.tenant_id, _cert_id(p["principal"]), d.id)


@handles("iot", "ListThingPrincipals")
async def list_principals(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    single_page(p)
    d = await thing(ctx, p["thingName"])
    ids = await ctx.services.certificates.certificates_of(d.id)
    return {"principals": [ctx.arn(f"cert/{i}") for i in ids]}
