"""Rollout, abort, timeout, retry and scheduling policies of a job.

Each is a small frozen value with its own validation and the pure arithmetic the
engine needs. They are stored as one JSON document on the job row.

Validation is the core's, whatever face built the value: every number must be one
the engine can compute with (finite, a whole number where it counts or waits, within
the widest range any face documents), so no request can store a job that stalls the
engine. The arithmetic is capped as well, for rows stored before these rules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cronsim import CronSim, CronSimError

from otahub.domain.errors import InvalidRequest
from otahub.domain.limits import INT32_MAX, Refused, check_float, check_int, check_text
from otahub.domain.states import ExecutionStatus, FailureType

# The widest ranges the faces document (AWS specs §1.5; Alibaba: MaximumPerMinute up to
# 10,000, RetryInterval up to 1,440 minutes).
MAX_RATE_PER_MINUTE = 10_000
RAMP_CAP_PER_MINUTE = 1000  # an exponential ramp without maximumPerMinute stops here
MAX_RAMP_STEPS = 60  # past this the ramp has passed any cap
MAX_TIMEOUT_MINUTES = 10_080
MAX_RETRY_INTERVAL_MINUTES = 1440
MAX_RETRIES = 10


def whole(value: object, name: str, low: int, high: int) -> int:
    """`value` as a whole number within [low, high]; InvalidRequest otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    try:
        return check_int(value, name, low, high)
    except Refused as exc:
        raise InvalidRequest(str(exc)) from None


def number(value: object, name: str, low: float, high: float) -> float:
    """`value` as a finite number within [low, high]; InvalidRequest otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number from {low} to {high}")
    try:
        if isinstance(value, float):
            check_float(value, name)
    except Refused as exc:
        raise InvalidRequest(str(exc)) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class ExponentialRate:
    base_per_minute: int
    increment_factor: float
    every_notified: int | None = None
    every_succeeded: int | None = None

    def validate(self) -> None:
        whole(self.base_per_minute, "baseRatePerMinute", 1, RAMP_CAP_PER_MINUTE)
        number(self.increment_factor, "incrementFactor", 1.1, 5)
        if (self.every_notified is None) == (self.every_succeeded is None):
            raise InvalidRequest(
                "rateIncreaseCriteria needs exactly one of numberOfNotifiedThings "
                "or numberOfSucceededThings"
            )
        if self.every_notified is not None:
            whole(self.every_notified, "numberOfNotifiedThings", 1, INT32_MAX)
        if self.every_succeeded is not None:
            whole(self.every_succeeded, "numberOfSucceededThings", 1, INT32_MAX)

    def rate(self, steps: int, cap: int) -> int:
        """The rate after `steps` increases, at most `cap`: multiplied only until it
        reaches the cap, so no stored factor can overflow it."""
        rate = float(self.base_per_minute)
        for _ in range(min(steps, MAX_RAMP_STEPS)):
            if rate >= cap:
                break
            rate *= self.increment_factor
        return max(1, math.floor(min(rate, cap)))


@dataclass(frozen=True)
class RolloutPolicy:
    """How fast executions are released; None everywhere means all at once."""

    max_per_minute: int | None = None
    exponential: ExponentialRate | None = None
    gray_percent: float | None = None  # share of the targets that get an execution at all
    skip_busy: bool = False  # leave out devices with unfinished work in another job

    def validate(self) -> None:
        if self.max_per_minute is not None:
            whole(self.max_per_minute, "maximumPerMinute", 1, MAX_RATE_PER_MINUTE)
        if self.exponential is not None:
            self.exponential.validate()
        if self.gray_percent is not None:
            number(self.gray_percent, "gray percentage", 0, 100)
            if self.gray_percent == 0:
                raise InvalidRequest("gray percentage must be above 0 and at most 100")
        if not isinstance(self.skip_busy, bool):
            raise InvalidRequest("skip_busy must be true or false")

    def rate_per_minute(self, notified: int, succeeded: int) -> int | None:
        """Executions that may be released in one minute now; None means no cap.
        Never above MAX_RATE_PER_MINUTE, whatever an old row holds."""
        exp = self.exponential
        cap = self.max_per_minute
        if cap is not None:
            cap = max(1, min(cap, MAX_RATE_PER_MINUTE))
        if exp is None:
            return cap
        every = exp.every_notified or exp.every_succeeded or 1
        reached = notified if exp.every_notified else succeeded
        return exp.rate(int(reached // every), cap or RAMP_CAP_PER_MINUTE)

    def target_cap(self, total_targets: int) -> int | None:
        """How many targets get an execution (gray release); None means all."""
        if self.gray_percent is None:
            return None
        share = min(self.gray_percent, 100)
        return max(1, math.floor(total_targets * share / 100))


@dataclass(frozen=True)
class AbortCriterion:
    failure_type: FailureType
    threshold_percent: float
    min_executed: int

    def validate(self) -> None:
        if not isinstance(self.failure_type, FailureType):
            raise InvalidRequest("failureType must be FAILED, REJECTED, TIMED_OUT or ALL")
        number(self.threshold_percent, "thresholdPercentage", 0, 100)
        whole(self.min_executed, "minNumberOfExecutedThings", 1, INT32_MAX)

    def is_met(self, counts: dict[ExecutionStatus, int]) -> bool:
        executed = sum(counts.get(s, 0) for s in EXECUTED)
        if executed < self.min_executed or executed == 0:
            return False
        failed = sum(counts.get(s, 0) for s in self.failure_type.statuses())
        return failed * 100 >= self.threshold_percent * executed


# "Executed things" in abort criteria: executions that reached an outcome.
EXECUTED = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.REJECTED,
        ExecutionStatus.TIMED_OUT,
    }
)


@dataclass(frozen=True)
class RetryCriterion:
    failure_type: FailureType  # FAILED, TIMED_OUT or ALL
    retries: int


@dataclass(frozen=True)
class RetryPolicy:
    criteria: tuple[RetryCriterion, ...] = ()
    interval_minutes: int = 0  # wait after the failure before the retry is queued

    def validate(self, *, has_timeout: bool) -> None:
        if len(self.criteria) > 2:
            raise InvalidRequest("at most two retry criteria")
        for c in self.criteria:
            if not isinstance(c.failure_type, FailureType):
                raise InvalidRequest("failureType must be FAILED, TIMED_OUT or ALL")
            if c.failure_type is FailureType.REJECTED:
                raise InvalidRequest("REJECTED executions are not retried")
            whole(c.retries, "numberOfRetries", 0, MAX_RETRIES)
            if c.failure_type is FailureType.TIMED_OUT and not has_timeout:
                raise InvalidRequest("retrying TIMED_OUT executions needs a timeout config")
        whole(self.interval_minutes, "retry interval", 0, MAX_RETRY_INTERVAL_MINUTES)

    def wait(self) -> timedelta:
        """How long after a failure its retry is queued (capped for old rows)."""
        return timedelta(minutes=max(0, min(self.interval_minutes, MAX_RETRY_INTERVAL_MINUTES)))

    def allowed_retries(self, status: ExecutionStatus) -> int:
        """How many retries in total an execution that ended in `status` may get."""
        allowed = 0
        for c in self.criteria:
            if status in c.failure_type.statuses():
                allowed = max(allowed, c.retries)
        return min(allowed, MAX_RETRIES)


@dataclass(frozen=True)
class TimeoutPolicy:
    in_progress_minutes: int | None = None

    def validate(self) -> None:
        if self.in_progress_minutes is not None:
            whole(self.in_progress_minutes, "inProgressTimeoutInMinutes", 1, MAX_TIMEOUT_MINUTES)


class EndBehavior(StrEnum):
    STOP_ROLLOUT = "STOP_ROLLOUT"
    CANCEL = "CANCEL"
    FORCE_CANCEL = "FORCE_CANCEL"


@dataclass(frozen=True)
class MaintenanceWindow:
    cron: str  # five-field cron, UTC
    duration_minutes: int

    def validate(self) -> None:
        if not isinstance(self.cron, str):
            raise InvalidRequest("a maintenance window's start time must be a cron expression")
        try:
            CronSim(check_text(self.cron, "the maintenance window"), datetime(2026, 1, 1))
        except (CronSimError, Refused) as exc:
            raise InvalidRequest(f"invalid maintenance window expression {self.cron!r}") from exc
        whole(self.duration_minutes, "durationInMinutes", 1, 1430)

    def contains(self, when: datetime) -> bool:
        """Whether `when` lies inside an occurrence of this window."""
        naive = when.replace(tzinfo=None)
        earliest = naive - timedelta(minutes=self.duration_minutes)
        # The first start strictly after `earliest` opens a window that covers `when`
        # if it is not later than `when`.
        start = next(CronSim(self.cron, earliest))
        return start <= naive


@dataclass(frozen=True)
class SchedulePolicy:
    start_at: datetime | None = None
    end_at: datetime | None = None
    end_behavior: EndBehavior = EndBehavior.STOP_ROLLOUT
    windows: tuple[MaintenanceWindow, ...] = ()

    def validate(self) -> None:
        for when in (self.start_at, self.end_at):
            if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
                raise InvalidRequest("schedule times must be timezone-aware datetimes")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise InvalidRequest("the end time must come after the start time")
        if not isinstance(self.end_behavior, EndBehavior):
            raise InvalidRequest("endBehavior must be STOP_ROLLOUT, CANCEL or FORCE_CANCEL")
        for w in self.windows:
            w.validate()

    def in_window(self, when: datetime) -> bool:
        return not self.windows or any(w.contains(when) for w in self.windows)


@dataclass(frozen=True)
class JobPolicies:
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    abort: tuple[AbortCriterion, ...] = ()
    timeout: TimeoutPolicy = field(default_factory=TimeoutPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    schedule: SchedulePolicy = field(default_factory=SchedulePolicy)

    def validate(self) -> None:
        self.rollout.validate()
        for a in self.abort:
            a.validate()
        self.timeout.validate()
        self.retry.validate(has_timeout=self.timeout.in_progress_minutes is not None)
        self.schedule.validate()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        sched = data["schedule"]
        for key in ("start_at", "end_at"):
            if sched[key] is not None:
                sched[key] = sched[key].isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobPolicies:
        if not data:
            return cls()
        r = data.get("rollout") or {}
        exp = r.get("exponential")
        s = data.get("schedule") or {}
        return cls(
            rollout=RolloutPolicy(
                max_per_minute=r.get("max_per_minute"),
                exponential=ExponentialRate(**exp) if exp else None,
                gray_percent=r.get("gray_percent"),
                skip_busy=bool(r.get("skip_busy", False)),
            ),
            abort=tuple(
                AbortCriterion(
                    FailureType(a["failure_type"]), a["threshold_percent"], a["min_executed"]
                )
                for a in data.get("abort") or ()
            ),
            timeout=TimeoutPolicy(**(data.get("timeout") or {})),
            retry=RetryPolicy(
                criteria=tuple(
                    RetryCriterion(FailureType(c["failure_type"]), c["retries"])
                    for c in (data.get("retry") or {}).get("criteria", ())
                ),
                interval_minutes=(data.get("retry") or {}).get("interval_minutes", 0),
            ),
            schedule=SchedulePolicy(
                start_at=datetime.fromisoformat(s["start_at"]) if s.get("start_at") else None,
                end_at=datetime.fromisoformat(s["end_at"]) if s.get("end_at") else None,
                end_behavior=EndBehavior(s.get("end_behavior", EndBehavior.STOP_ROLLOUT)),
                windows=tuple(MaintenanceWindow(**w) for w in s.get("windows", ())),
            ),
        )
