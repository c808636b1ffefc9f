"""Tests of the blob stores, presigned download URLs and the download endpoint."""
