"""Signing errors, as core errors so that faces map them unchanged."""

from __future__ import annotations

from otahub.domain.errors import InvalidRequest


class SigningError(InvalidRequest):
    """Key or certificate material is unusable for code signing."""


class WeakKey(SigningError):
    """A key below the accepted strength (RSA under 2048 bits, a curve other than P-256)."""


class KeyMismatch(SigningError):
    """A private key and a certificate do not belong together."""
