"""CreateOTAUpdate in a process killed after a given number of database statements,
for the OTA build crash test.

`python -m tests.unit.core.ota_build_child <url> <blob dir> <start> <ref>:<kill_after> ...`
forks once per update, before any connection or event loop exists: each fork creates
its update and is SIGKILLed when it is about to run its `kill_after`-th statement (or
commit), so one interpreter start serves every trial.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from otahub.aws.handlers.ota import ota_update_service
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.ota_updates import NewOtaUpdate, OtaUpdateService
from otahub.core.services.signing import SigningService
from otahub.domain.clock import FakeClock
from otahub.domain.policies import JobPolicies
from otahub.store.db import Database

ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}"
THING, BUCKET, KEY = "dev1", "firmware", "fw.bin"


def ota_service(db: Database, clock: FakeClock, blob_dir: Path) -> OtaUpdateService:
    services = Services.build(db, clock)
    objects = ObjectService(services.ctx, FilesystemBlobStore(blob_dir))
    return ota_update_service(services, objects, SigningService(services.ctx, objects))


def new_update(ref: str) -> NewOtaUpdate:
    """An update over MQTT and HTTP from an S3 object, signed by the caller, tagged."""
    signing = {
        "customCodeSigning": {
            "signature": {"inlineDocument": "c2lnbmF0dXJl"},
            "hashAlgorithm": "SHA256",
            "signatureAlgorithm": "ECDSA",
        }
    }
    file = {
        "fileName": KEY,
        "fileVersion": "2",
        "fileLocation": {"s3Location": {"bucket": BUCKET, "key": KEY}},
        "codeSigning": signing,
    }
    tags = [{"Key": "team", "Value": "ota"}]
    request: dict[str, Any] = {
        "targets": [f"{ARN}:thing/{THING}"],
        "protocols": ["MQTT", "HTTP"],
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ota",
        "files": [file],
        "tags": tags,
    }
    return NewOtaUpdate(
        ref=ref,
        request=request,
        protocols=["MQTT", "HTTP"],
        presign_seconds=1800,
        policies=JobPolicies(),
        role_account=ACCOUNT,
        job_data={"targets": request["targets"]},
        update_arn=f"{ARN}:otaupdate/{ref}",
        job_arn=f"{ARN}:job/AFR_OTA-{ref}",
        s3_endpoint="https://s3.us-east-1.amazonaws.com",
        tags=tags,
    )


def kill_after(db: Database, statements: int) -> None:
    """SIGKILL this process when it is about to run its `statements`-th statement or commit."""
    seen = 0

    def count(*_: Any) -> None:
        nonlocal seen
        seen += 1
        if seen >= statements:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    event.listen(db.engine.sync_engine, "commit", count)


async def create(url: str, blob_dir: Path, start: datetime, ref: str, statements: int) -> None:
    db = Database(url)
    clock = FakeClock(start)
    service = ota_service(db, clock, blob_dir)
    tenant = await service.services.accounts.tenant(ACCOUNT)
    kill_after(db, statements)
    await service.create(tenant.id, new_update(ref), ACCOUNT)
    await db.dispose()


def main(url: str, blob_dir: str, start: str, trials: list[str]) -> None:
    for trial in trials:
        ref, _, statements = trial.partition(":")
        pid = os.fork()
        if pid == 0:
            asyncio.run(
                create(url, Path(blob_dir), datetime.fromisoformat(start), ref, int(statements))
            )
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
