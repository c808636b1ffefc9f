"""MQTT file download for Alibaba devices (`DownloadProtocol=MQTT`, specs §5.6):
a block of a package file per request, in the binary reply frame.

The push names the file by `streamId` (the package) and `streamFileId` (the file's
ordinal); a device gets blocks only of packages it has a task for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from otahub.aliyun.devices.codec import (
    CodecError,
    DownloadRequest,
    build_download_error,
    build_download_reply,
    parse_download_request,
    request_id,
)
from otahub.domain.entities import Package
from otahub.gateway.messages import ReadRange

log = logging.getLogger("otahub.aliyun.devices")

BAD_REQUEST, NOT_FOUND = 400, 404


class FileDownloads:
    def __init__(self, read_range: ReadRange) -> None:
        self.read_range = read_range

    async def answer(self, payload: bytes, packages: Mapping[int, Package]) -> bytes:
        """The reply frame to one block request; `packages` are those the device
        may read, by id."""
        try:
            request = parse_download_request(payload)
        except CodecError as exc:
            log.info("malformed file download request: %s", exc)
            return build_download_error(request_id(payload), BAD_REQUEST, str(exc))
        package = packages.get(request.stream_id)
        found = [f for f in package.files if f.ordinal == request.file_id] if package else []
        if not found or found[0].blob_key is None or found[0].size is None:
            return build_download_error(request.id, NOT_FOUND, "no such stream or file")
        f = found[0]
        assert f.blob_key is not None and f.size is not None
        return await self._block(request, f.blob_key, f.size)

    async def _block(self, request: DownloadRequest, blob_key: str, length: int) -> bytes:
        if request.offset >= length:
            return build_download_error(request.id, BAD_REQUEST, "offset past the end of the file")
        size = min(request.size, length - request.offset)
        block = await self.read_range(blob_key, request.offset, size)
        return build_download_reply(request, file_length=length, block=block)
