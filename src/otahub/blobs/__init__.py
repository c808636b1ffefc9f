"""Firmware blob storage: a streaming, hashing store on the filesystem or S3, device
download URLs signed by the server, and the ranged download endpoint."""

from otahub.blobs.base import DEFAULT_MAX_SIZE, BlobInfo, BlobStore
from otahub.blobs.errors import BlobError, BlobNotFound, BlobTooLarge, InvalidBlobKey
from otahub.blobs.factory import blob_store_from_url
from otahub.blobs.fs import FilesystemBlobStore
from otahub.blobs.s3 import S3BlobStore, S3Settings

__all__ = [
    "DEFAULT_MAX_SIZE",
    "BlobError",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "FilesystemBlobStore",
    "InvalidBlobKey",
    "S3BlobStore",
    "S3Settings",
    "blob_store_from_url",
]
