"""The root account's access key: from the environment, or generated once and kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from otahub.domain.ids import secret_key


@dataclass(frozen=True)
class RootCredentials:
    account_id: str
    access_key_id: str
    secret_access_key: str


def load_or_create(
    data_dir: Path,
    access_key_id: str | None = None,
    secret: str | None = None,
    account_id: str | None = None,
) -> RootCredentials:
    path = data_dir / "credentials.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    account_id = account_id or stored.get("account_id") or _new_account_id()
    if access_key_id and secret:
        creds = RootCredentials(account_id, access_key_id, secret)
    elif stored.get("access_key_id") and stored.get("secret_access_key"):
        creds = RootCredentials(account_id, stored["access_key_id"], stored["secret_access_key"])
    else:
        creds = RootCredentials(account_id, "AKOH" + secret_key(16).upper(), secret_key(40))
    record = {
        "account_id": creds.account_id,
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
    }
    if record != stored:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2)
        tmp.replace(path)
    return creds


def _new_account_id() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def derive_secret(root_secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the root secret, so that every process
    sharing the account (and so the secret) derives the same one."""
    return hmac.new(root_secret.encode(), f"otahub:{purpose}".encode(), hashlib.sha256).digest()
