"""How AWS devices see executions: the JobExecutionData and summary shapes.

Used by the Jobs MQTT topics and the iot-jobs-data HTTP plane alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from otahub.domain import limits
from otahub.domain.entities import Execution
from otahub.domain.errors import InvalidRequest
from otahub.domain.states import ExecutionStatus

S = ExecutionStatus

# AWS has no NOTIFIED or CONFIRM: a device sees an execution it may act on as QUEUED.
_AWS_STATUS = {S.NOTIFIED: "QUEUED", S.CONFIRM: "QUEUED"}

# iot-jobs-data's DetailsKey and DetailsValue (values: `[^\p{C}]+`, at most 1024).
_DETAIL_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_DETAIL_VALUE = 1024
MAX_CLIENT_TOKEN = 64  # bytes, as AWS IoT's other client tokens


def aws_status(status: ExecutionStatus) -> str:
    return _AWS_STATUS.get(status, status.value)


def epoch(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


def summary(ex: Execution) -> dict[str, Any]:
    out: dict[str, Any] = {
        "jobId": ex.job_ref,
        "queuedAt": epoch(ex.queued_at),
        "lastUpdatedAt": epoch(ex.updated_at),
        "versionNumber": ex.version,
        "executionNumber": ex.execution_number,
    }
    if ex.started_at is not None:
        out["startedAt"] = epoch(ex.started_at)
    return out


def execution_data(
    ex: Execution,
    thing_name: str,
    document: str | None,
    now: datetime,
    *,
    include_document: bool = True,
    document_as_object: bool = True,
) -> dict[str, Any]:
    """JobExecutionData: over MQTT the document is a JSON object, over HTTP a string."""
    out: dict[str, Any] = {
        "jobId": ex.job_ref,
        "thingName": thing_name,
        "status": aws_status(ex.status),
        "queuedAt": epoch(ex.queued_at),
        "lastUpdatedAt": epoch(ex.updated_at),
        "versionNumber": ex.version,
        "executionNumber": ex.execution_number,
    }
    if ex.status_details:
        out["statusDetails"] = dict(ex.status_details)
    if ex.started_at is not None:
        out["startedAt"] = epoch(ex.started_at)
    if ex.deadline_at is not None and ex.status is S.IN_PROGRESS:
        out["approximateSecondsBeforeTimedOut"] = max(
            0, int((ex.deadline_at - now).total_seconds())
        )
    if include_document and document is not None:
        out["jobDocument"] = parse_document(document) if document_as_object else document
    return out


def parse_document(document: str) -> Any:
    """The stored document as an object; as its text when it is none, or is one that
    CreateJob now refuses (stored before it did: nested thousands deep, say)."""
    try:
        return limits.loads_json(document)
    except limits.Refused:
        return document


def execution_state(ex: Execution) -> dict[str, Any]:
    out: dict[str, Any] = {"status": aws_status(ex.status), "versionNumber": ex.version}
    if ex.status_details:
        out["statusDetails"] = dict(ex.status_details)
    return out


def check_status_details(details: Any) -> dict[str, str] | None:
    """statusDetails as a device sends it: a flat map of short keys to text."""
    if details is None:
        return None
    if not isinstance(details, Mapping):
        raise InvalidRequest("statusDetails must be a map of strings")
    checked: dict[str, str] = {}
    for key, value in details.items():
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            raise InvalidRequest(
                f"statusDetails key {key!r:.40} must match [a-zA-Z0-9:_-]{{1,128}}"
            )
        if not isinstance(value, str) or not _detail_value_ok(value):
            raise InvalidRequest(
                f"statusDetails value of {key!r} must be 1 to {MAX_DETAIL_VALUE} characters,"
                " none of them a control, format or unassigned character"
            )
        checked[key] = value
    return checked


def _detail_value_ok(value: str) -> bool:
    if not 0 < len(value) <= MAX_DETAIL_VALUE or _ASCII_CONTROL.search(value):
        return False
    # \p{C}: controls, format characters, surrogates, private use, unassigned.
    return value.isascii() or not any(unicodedata.category(c)[0] == "C" for c in value)


def parse_int(value: Any, name: str) -> int | None:
    """A long of the model, which AWS's embedded clients may send as a numeric string."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return limits.parse_int(value, name)
        if isinstance(value, int) and not isinstance(value, bool):
            return limits.check_int(value, name)
    except limits.Refused as exc:
        raise InvalidRequest(str(exc)) from None
    raise InvalidRequest(f"{name} must be a number")


def parse_bool(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return value


def is_client_token(value: Any) -> bool:
    """A clientToken that can be echoed: text of at most MAX_CLIENT_TOKEN bytes."""
    return (
        isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) <= MAX_CLIENT_TOKEN
    )
