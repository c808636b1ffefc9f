"""Streams: files split in blocks for delivery over MQTT."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from otahub.core.services.base import ServiceContext
from otahub.domain.errors import AlreadyExists, InvalidRequest, NotFound
from otahub.store.tables import streams

MAX_FILES = 50


@dataclass(frozen=True)
class StreamFile:
    file_id: int  # 0..255
    blob_key: str
    size: int
    source: Mapping[str, Any]  # where it came from (e.g. an S3 bucket, key and version)


@dataclass(frozen=True)
class Stream:
    id: int
    tenant_id: int
    ref: str
    version: int
    description: str | None
    files: tuple[StreamFile, ...]
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def file(self, file_id: int) -> StreamFile:
        for f in self.files:
            if f.file_id == file_id:
                return f
        raise NotFound(f"stream {self.ref} has no file {file_id}")


def _check_files(files: Sequence[StreamFile]) -> None:
    if not 1 <= len(files) <= MAX_FILES:
        raise InvalidRequest(f"a stream has 1 to {MAX_FILES} files")
    ids = [f.file_id for f in files]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("file ids of a stream must be unique")
    if any(not 0 <= i <= 255 for i in ids):
        raise InvalidRequest("file ids must be between 0 and 255")


def _files_json(files: Sequence[StreamFile]) -> list[dict[str, Any]]:
    return [
        {"file_id": f.file_id, "blob_key": f.blob_key, "size": f.size, "source": dict(f.source)}
        for f in files
    ]


def _stream(row: Any) -> Stream:
    files = tuple(
        StreamFile(f["file_id"], f["blob_key"], f["size"], f.get("source", {})) for f in row.files
    )
    return Stream(
        row.id,
        row.tenant_id,
        row.ref,
        row.version,
        row.description,
        files,
        dict(row.data),
        row.created_at,
        row.updated_at,
    )


class StreamService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # Goes up with every change made through this process: what caches a stream
        # (the MQTT stream handler, briefly) knows its copy is stale at once.
        self.changes = 0

    async def create(
        self,
        tenant_id: int,
        ref: str,
        files: Sequence[StreamFile],
        *,
        description: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Stream:
        _check_files(files)
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            try:
                await conn.execute(
                    insert(streams).values(
                        tenant_id=tenant_id,
                        ref=ref,
                        version=1,
                        description=description,
                        files=_files_json(files),
                        data=dict(data or {}),
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"stream {ref} already exists", ref=ref) from exc
        return await self.get(tenant_id, ref)

    async def get(self, tenant_id: int, ref: str) -> Stream:
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(streams).where(streams.c.tenant_id == tenant_id, streams.c.ref == ref)
                )
            ).first()
        if row is None:
            raise NotFound(f"stream {ref} not found", ref=ref)
        return _stream(row)

    async def list(
        self, tenant_id: int, *, after_id: int = 0, limit: int = 100, ascending: bool = True
    ) -> list[Stream]:
        order = streams.c.id.asc() if ascending else streams.c.id.desc()
        q = select(streams).where(streams.c.tenant_id == tenant_id)
        if after_id:
            q = q.where(streams.c.id > after_id if ascending else streams.c.id < after_id)
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(q.order_by(order).limit(limit))
            return [_stream(r) for r in rows]

    async def update(
        self,
        tenant_id: int,
        ref: str,
        *,
        files: Sequence[StreamFile] | None = None,
        description: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Stream:
        """Change a stream; its version goes up by one."""
        current = await self.get(tenant_id, ref)
        values: dict[str, Any] = {
            "version": current.version + 1,
            "updated_at": self.ctx.clock.now(),
        }
        if files is not None:
            _check_files(files)
            values["files"] = _files_json(files)
        if description is not None:
            values["description"] = description
        if data is not None:
            values["data"] = {**current.data, **data}
        self.changes += 1
        async with self.ctx.db.transaction() as conn:
            await conn.execute(update(streams).where(streams.c.id == current.id).values(**values))
        return await self.get(tenant_id, ref)

    async def delete(self, tenant_id: int, ref: str) -> None:
        current = await self.get(tenant_id, ref)
        self.changes += 1
        async with self.ctx.db.transaction() as conn:
            await conn.execute(delete(streams).where(streams.c.id == current.id))
