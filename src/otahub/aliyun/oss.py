"""The OSS-style POST upload endpoint (`POST /oss`) that GenerateOTAUploadURL's form
aims at (specs §6): fields first, policy and signature checked before a byte is
stored, then `file` streamed into the object store. Answers in OSS's XML.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.types import Receive, Scope, Send

from otahub.aliyun import storage
from otahub.aliyun.protocol.envelope import new_request_id
from otahub.aliyun.protocol.oss_policy import (
    OssError,
    PostedForm,
    malformed,
    verify_post_form,
)
from otahub.blobs.errors import BlobTooLarge
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.domain.clock import Clock
from otahub.domain.errors import OtahubError

log = logging.getLogger("otahub.aliyun.oss")
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS_BYTES = 1024 * 1024  # all fields before `file` together
FILE_FIELD = "file"


class _FormReader:
    """Feeds the request body to a multipart parser and hands out what it finds:
    the fields before `file`, then the file's bytes as they arrive."""

    def __init__(self, receive: Receive, boundary: bytes) -> None:
        self.receive = receive
        self.fields: dict[str, str] = {}
        self.file_started = False
        self.file_ended = False
        self.after_file = False
        self.pending: list[bytes] = []
        self.more_body = True
        self._name = ""
        self._value = bytearray()
        self._fields_bytes = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._in_file = False
        self.parser = python_multipart.MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()
        if self.file_ended:
            self.after_file = True

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._in_file = self._name.lower() == FILE_FIELD and not self.file_started
        if self._in_file:
            self.file_started = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])
            return
        self._value += data[start:end]
        self._fields_bytes += end - start
        if len(self._value) > MAX_FIELD_BYTES:
            raise malformed(f"Field {self._name} is too long.")
        if self._fields_bytes > MAX_FIELDS_BYTES:
            raise malformed("The fields before file are too long.")

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.file_ended = True
        elif not self.file_started:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    async def _feed_once(self) -> None:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise malformed("The client went away.")
        chunk = message.get("body", b"")
        self.more_body = bool(message.get("more_body"))
        try:
            if chunk:
                self.parser.write(chunk)
            if not self.more_body:
                self.parser.finalize()
        except FormParserError as exc:  # e.g. a boundary that is not the Content-Type's
            raise malformed(str(exc)) from None

    async def read_fields(self) -> None:
        """Read until the `file` part begins (or the body ends)."""
        while not self.file_started and self.more_body:
            await self._feed_once()

    async def file_chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self.pending:
                yield self.pending.pop(0)
            if not self.more_body:
                break
            await self._feed_once()
        if not self.file_ended:
            raise malformed("The file part is incomplete.")


class OssUploadApp:
    def __init__(self, services: Services, objects: ObjectService, clock: Clock) -> None:
        self.services = services
        self.objects = objects
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        try:
            status = await self._handle(scope, receive)
            await _respond(send, status, b"", request_id)
        except OssError as err:
            await _respond(send, err.status, err.to_xml(request_id), request_id)
        except Exception:
            log.exception("OSS upload failed")
            internal = OssError("InternalError", "We encountered an internal error.", 500)
            await _respond(send, 500, internal.to_xml(request_id), request_id)

    async def _handle(self, scope: Scope, receive: Receive) -> int:
        if scope["method"] != "POST":
            raise OssError("MethodNotAllowed", "The specified method is not allowed.", 405)
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        ctype, options = parse_options_header(headers.get("content-type", b""))
        boundary = options.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise malformed("The Content-Type must be multipart/form-data with a boundary.")
        reader = _FormReader(receive, boundary)
        await reader.read_fields()
        if not reader.file_started:
            raise malformed("Field file is missing.")
        form, tenant_id = await self._verify(reader.fields)
        try:
            stored = await self.objects.put(
                tenant_id, storage.bucket_name(tenant_id), form.key, reader.file_chunks()
            )
        except BlobTooLarge:
            raise OssError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.", 400
            ) from None
        except OtahubError as exc:
            raise OssError("InvalidArgument", exc.message, 400) from exc
        if reader.after_file:
            log.info("fields after file in an upload form were ignored (OSS does the same)")
        try:
            form.check_size(stored.size)
        except OssError:
            await self.objects.delete(tenant_id, storage.bucket_name(tenant_id), form.key)
            raise
        return form.success_status

    async def _verify(self, fields: dict[str, str]) -> tuple[PostedForm, int]:
        lowered = {k.lower(): v for k, v in fields.items()}
        access_key_id = lowered.get("ossaccesskeyid", "")
        found = await self.services.accounts.lookup_key(access_key_id) if access_key_id else None
        secrets: dict[str, Any] = {access_key_id: found[0]} if found else {}
        form = verify_post_form(fields, lookup_secret=secrets.get, now=self.clock.now())
        assert found is not None  # verify_post_form refuses an unknown key
        if not storage.is_upload_key(form.key):
            raise OssError("InvalidObjectName", "The specified object is not valid.", 400)
        tenant = await self.services.accounts.tenant(found[1])
        await storage.ensure_bucket(self.objects, tenant.id)
        return form, tenant.id


async def _respond(send: Send, status: int, body: bytes, request_id: str) -> None:
    headers = [
        (b"x-oss-request-id", request_id.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if body:
        headers.append((b"content-type", b"application/xml"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
