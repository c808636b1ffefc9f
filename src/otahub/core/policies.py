"""Rollout, abort, timeout, retry and scheduling policies of a job.

Each is a small frozen value with its own validation and the pure arithmetic the
engine needs. They are stored as one JSON document on the job row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cronsim import CronSim, CronSimError

from otahub.core.errors import InvalidRequest
from otahub.core.states import ExecutionStatus, FailureType


@dataclass(frozen=True)
class ExponentialRate:
    base_per_minute: int
    increment_factor: float
    every_notified: int | None = None
    every_succeeded: int | None = None

    def validate(self) -> None:
        if not 1 <= self.base_per_minute <= 1000:
            raise InvalidRequest("baseRatePerMinute must be between 1 and 1000")
        if not 1.1 <= self.increment_factor <= 5:
            raise InvalidRequest("incrementFactor must be between 1.1 and 5")
        if (self.every_notified is None) == (self.every_succeeded is None):
            raise InvalidRequest(
                "rateIncreaseCriteria needs exactly one of numberOfNotifiedThings "
                "or numberOfSucceededThings"
            )
        for n in (self.every_notified, self.every_succeeded):
            if n is not None and n < 1:
                raise InvalidRequest("rate increase criteria must be at least 1")


@dataclass(frozen=True)
class RolloutPolicy:
    """How fast executions are released; None everywhere means all at once."""

    max_per_minute: int | None = None
    exponential: ExponentialRate | None = None
    gray_percent: float | None = None  # share of the targets that get an execution at all
    skip_busy: bool = False  # leave out devices with unfinished work in another job

    def validate(self) -> None:
        if self.max_per_minute is not None and self.max_per_minute < 1:
            raise InvalidRequest("maximumPerMinute must be at least 1")
        if self.exponential:
            self.exponential.validate()
        if self.gray_percent is not None and not 0 < self.gray_percent <= 100:
            raise InvalidRequest("gray percentage must be above 0 and at most 100")

    def rate_per_minute(self, notified: int, succeeded: int) -> int | None:
        """Executions that may be released in one minute now; None means no cap."""
        exp = self.exponential
        if exp is None:
            return self.max_per_minute
        if exp.every_notified:
            steps = notified // exp.every_notified
        else:
            steps = succeeded // (exp.every_succeeded or 1)
        # Past ~60 steps the float overflows any cap; stop multiplying there.
        rate = exp.base_per_minute * exp.increment_factor ** min(steps, 60)
        cap = self.max_per_minute if self.max_per_minute is not None else 1000
        return max(1, min(cap, math.floor(rate)))

    def target_cap(self, total_targets: int) -> int | None:
        """How many targets get an execution (gray release); None means all."""
        if self.gray_percent is None:
            return None
        return max(1, math.floor(total_targets * self.gray_percent / 100))


@dataclass(frozen=True)
class AbortCriterion:
    failure_type: FailureType
    threshold_percent: float
    min_executed: int

    def validate(self) -> None:
        if not 0 <= self.threshold_percent <= 100:
            raise InvalidRequest("thresholdPercentage must be between 0 and 100")
        if self.min_executed < 1:
            raise InvalidRequest("minNumberOfExecutedThings must be at least 1")

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
            if c.failure_type is FailureType.REJECTED:
                raise InvalidRequest("REJECTED executions are not retried")
            if not 0 <= c.retries <= 10:
                raise InvalidRequest("numberOfRetries must be between 0 and 10")
            if c.failure_type is FailureType.TIMED_OUT and not has_timeout:
                raise InvalidRequest("retrying TIMED_OUT executions needs a timeout config")
        if self.interval_minutes < 0:
            raise InvalidRequest("retry interval must not be negative")

    def allowed_retries(self, status: ExecutionStatus) -> int:
        """How many retries in total an execution that ended in `status` may get."""
        allowed = 0
        for c in self.criteria:
            if status in c.failure_type.statuses():
                allowed = max(allowed, c.retries)
        return min(allowed, 10)


@dataclass(frozen=True)
class TimeoutPolicy:
    in_progress_minutes: int | None = None

    def validate(self) -> None:
        if self.in_progress_minutes is not None and not 1 <= self.in_progress_minutes <= 10080:
            raise InvalidRequest("inProgressTimeoutInMinutes must be between 1 and 10080")


class EndBehavior(StrEnum):
    STOP_ROLLOUT = "STOP_ROLLOUT"
    CANCEL = "CANCEL"
    FORCE_CANCEL = "FORCE_CANCEL"


@dataclass(frozen=True)
class MaintenanceWindow:
    cron: str  # five-field cron, UTC
    duration_minutes: int

    def validate(self) -> None:
        try:
            CronSim(self.cron, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise InvalidRequest(f"invalid maintenance window expression {self.cron!r}") from exc
        if not 1 <= self.duration_minutes <= 1430:
            raise InvalidRequest("durationInMinutes must be between 1 and 1430")

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
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise InvalidRequest("the end time must come after the start time")
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
