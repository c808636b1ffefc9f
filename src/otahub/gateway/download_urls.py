"""The download URL a device is handed for a stored file, whichever cloud it speaks."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from otahub.blobs.base import BlobStore
from otahub.blobs.presign import PresignVerifier


class DeviceUrls:
    def __init__(self, blobs: BlobStore, signer: PresignVerifier, http_base: str) -> None:
        self.blobs = blobs
        self.signer = signer
        self.http_base = http_base.rstrip("/")

    def url(self, blob_key: str, device_id: int, expires_s: int) -> str:
        """The store's own presigned URL where it has one (an S3-compatible store serves
        devices itself, so downloads at scale never pass through otahub); otherwise
        otahub's `/dl`, signed for this device."""
        direct = self.blobs.presigned_get_url(blob_key, expires_s)
        if direct is not None:
            return direct
        params = self.signer.sign(blob_key, device_id=str(device_id), expires_in=expires_s)
        return f"{self.http_base}/dl/{quote(blob_key)}?{urlencode(params)}"
