"""The state machines: executions, jobs and package verification, defined once.

Execution states are the union of the AWS and Alibaba vocabularies; each face maps
them to its own words. Every allowed transition is listed here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from otahub.domain.errors import InvalidStateTransition


class ExecutionStatus(StrEnum):
    CONFIRM = "CONFIRM"  # waits for an operator's confirmation before release
    QUEUED = "QUEUED"  # exists, waits to be released or picked up
    NOTIFIED = "NOTIFIED"  # the device was told about it
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    REMOVED = "REMOVED"
    CANCELED = "CANCELED"


S = ExecutionStatus

TERMINAL: frozenset[ExecutionStatus] = frozenset(
    {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.REJECTED, S.REMOVED, S.CANCELED}
)
PENDING: frozenset[ExecutionStatus] = frozenset({S.QUEUED, S.NOTIFIED, S.IN_PROGRESS})
UNSTARTED: frozenset[ExecutionStatus] = frozenset({S.CONFIRM, S.QUEUED, S.NOTIFIED})
# What a device itself may report.
DEVICE_SETTABLE: frozenset[ExecutionStatus] = frozenset(
    {S.IN_PROGRESS, S.SUCCEEDED, S.FAILED, S.REJECTED}
)

TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    S.CONFIRM: frozenset({S.QUEUED, S.CANCELED, S.REMOVED}),
    S.QUEUED: frozenset(
        {S.NOTIFIED, S.IN_PROGRESS, S.SUCCEEDED, S.FAILED, S.REJECTED, S.CANCELED, S.REMOVED}
    ),
    S.NOTIFIED: frozenset(
        {S.IN_PROGRESS, S.SUCCEEDED, S.FAILED, S.REJECTED, S.CANCELED, S.REMOVED}
    ),
    # IN_PROGRESS -> IN_PROGRESS reports progress and refreshes the step timer.
    S.IN_PROGRESS: frozenset(
        {S.IN_PROGRESS, S.SUCCEEDED, S.FAILED, S.REJECTED, S.TIMED_OUT, S.CANCELED}
    ),
    **{terminal: frozenset() for terminal in TERMINAL},
}


def can_transition(current: ExecutionStatus, new: ExecutionStatus) -> bool:
    return new in TRANSITIONS[current]


def check_transition(
    current: ExecutionStatus, new: ExecutionStatus, *, state: dict[str, Any] | None = None
) -> None:
    """Raise InvalidStateTransition unless `current -> new` is allowed."""
    if not can_transition(current, new):
        raise InvalidStateTransition(
            f"Cannot change an execution from {current} to {new}", current=state or {}
        )


def sources_of(new: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """Every status from which `new` may be entered (for set-based updates)."""
    return frozenset(src for src, targets in TRANSITIONS.items() if new in targets)


class FailureType(StrEnum):
    """Failure kinds that abort and retry criteria count."""

    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"
    ALL = "ALL"

    def statuses(self) -> frozenset[ExecutionStatus]:
        if self is FailureType.ALL:
            return frozenset({S.FAILED, S.REJECTED, S.TIMED_OUT})
        return frozenset({ExecutionStatus(self.value)})


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"
    DELETION_IN_PROGRESS = "DELETION_IN_PROGRESS"


ACTIVE_JOB: frozenset[JobStatus] = frozenset({JobStatus.SCHEDULED, JobStatus.IN_PROGRESS})


class TargetSelection(StrEnum):
    SNAPSHOT = "SNAPSHOT"
    CONTINUOUS = "CONTINUOUS"


class ReleaseMode(StrEnum):
    """How the rollout policy meters a job.

    CREATE: executions come into being as they are released (AWS: a QUEUED
    execution is one the device may see). NOTIFY: every execution is created at
    once, QUEUED (or CONFIRM), and release moves QUEUED -> NOTIFIED and pushes it to
    the device (Alibaba).
    """

    CREATE = "CREATE"
    NOTIFY = "NOTIFY"


class VerifyState(StrEnum):
    NOT_REQUIRED = "NOT_REQUIRED"
    UNVERIFIED = "UNVERIFIED"
    VERIFYING = "VERIFYING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


RELEASABLE_PACKAGE: frozenset[VerifyState] = frozenset(
    {VerifyState.NOT_REQUIRED, VerifyState.VERIFIED}
)
