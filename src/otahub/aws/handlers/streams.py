"""Streams: files (S3 objects) offered to devices in blocks over MQTT."""

from __future__ import annotations

from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import page_token
from otahub.aws.wire.app import AwsContext
from otahub.core.services.objects import ObjectService
from otahub.core.services.streams import Stream, StreamFile
from otahub.domain.errors import InvalidRequest


async def stream_files(
    ctx: AwsContext, objects: ObjectService, files: list[dict[str, Any]]
) -> list[StreamFile]:
    out = []
    for f in files:
        loc = f.get("s3Location") or {}
        if not loc.get("bucket") or not loc.get("key"):
            raise InvalidRequest("each stream file needs s3Location with bucket and key")
        obj = await objects.get(ctx.tenant_id, loc["bucket"], loc["key"], loc.get("version"))
        if obj.blob_key is None:
            raise InvalidRequest(f"s3://{loc['bucket']}/{loc['key']} has no content")
        source = {"bucket": loc["bucket"], "key": loc["key"], "version": obj.version_id}
        out.append(StreamFile(int(f.get("fileId", 0)), obj.blob_key, obj.size, source))
    return out


def _files_out(s: Stream) -> list[dict[str, Any]]:
    return [
        {
            "fileId": f.file_id,
            "s3Location": {
                "bucket": f.source.get("bucket"),
                "key": f.source.get("key"),
                "version": f.source.get("version"),
            },
        }
        for f in s.files
    ]


def _summary(ctx: AwsContext, s: Stream) -> dict[str, Any]:
    return {
        "streamId": s.ref,
        "streamArn": ctx.arn(f"stream/{s.ref}"),
        "streamVersion": s.version,
        "description": s.description,
    }


@handles("iot", "CreateStream")
async def create_stream(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    files = await stream_files(ctx, ctx.objects, p["files"])
    s = await ctx.services.streams.create(
        ctx.tenant_id,
        p["streamId"],
        files,
        description=p.get("description"),
        data={"roleArn": p["roleArn"], "tags": p.get("tags") or []},
    )
    return _summary(ctx, s)


@handles("iot", "DescribeStream")
async def describe_stream(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    s = await ctx.services.streams.get(ctx.tenant_id, p["streamId"])
    return {
        "streamInfo": {
            **_summary(ctx, s),
            "files": _files_out(s),
            "createdAt": s.created_at,
            "lastUpdatedAt": s.updated_at,
            "roleArn": s.data.get("roleArn"),
        }
    }


@handles("iot", "ListStreams")
async def list_streams(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    limit = p.get("maxResults") or 50
    ascending = p.get("ascendingOrder", False)
    found = await ctx.services.streams.list(
        ctx.tenant_id, after_id=page_token(p), limit=limit + 1, ascending=ascending
    )
    page = found[:limit]
    out: dict[str, Any] = {"streams": [_summary(ctx, s) for s in page]}
    if len(found) > limit:
        out["nextToken"] = str(page[-1].id)
    return out


@handles("iot", "UpdateStream")
async def update_stream(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    files = await stream_files(ctx, ctx.objects, p["files"]) if p.get("files") else None
    data = {"roleArn": p["roleArn"]} if p.get("roleArn") else None
    s = await ctx.services.streams.update(
        ctx.tenant_id, p["streamId"], files=files, description=p.get("description"), data=data
    )
    return _summary(ctx, s)


@handles("iot", "DeleteStream")
async def delete_stream(ctx: AwsContext, p: dict[str, Any]) -> None:
    await ctx.services.streams.delete(ctx.tenant_id, p["streamId"])
