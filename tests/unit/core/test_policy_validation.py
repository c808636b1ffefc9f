"""Issue 18: no face can store a policy the engine cannot compute. The core refuses
NaN, infinities, out-of-range and non-whole numbers in every policy field on create
and on update, whichever face sent them, and stores nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import pytest

from otahub.core.services import Services
from otahub.domain.errors import InvalidRequest
from otahub.domain.policies import (
    MAX_RATE_PER_MINUTE,
    AbortCriterion,
    ExponentialRate,
    JobPolicies,
    MaintenanceWindow,
    RetryCriterion,
    RetryPolicy,
    RolloutPolicy,
    SchedulePolicy,
    TimeoutPolicy,
)
from otahub.domain.states import FailureType
from tests.unit.core.fleet import group_job, make_fleet

# float("1e309") is what a JSON decoder makes of the literal 1e309.
NOT_FINITE = [math.nan, math.inf, -math.inf, float("1e309")]
NOT_WHOLE = [2.5, True, "10"]


def _ramp(**bad: object) -> JobPolicies:
    values: dict[str, object] = {"base_per_minute": 10, "increment_factor": 2.0}
    values["every_notified"] = 5
    values.update(bad)
    return JobPolicies(RolloutPolicy(exponential=ExponentialRate(**values)))  # type: ignore[arg-type]


def _succeeded_ramp(bad: object) -> JobPolicies:
    return _ramp(every_notified=None, every_succeeded=bad)


def _abort(threshold: object = 50.0, minimum: object = 10) -> JobPolicies:
    return JobPolicies(abort=(AbortCriterion(FailureType.FAILED, threshold, minimum),))  # type: ignore[arg-type]


def _retry(retries: object = 1, interval: object = 0) -> JobPolicies:
    return JobPolicies(
        retry=RetryPolicy((RetryCriterion(FailureType.FAILED, retries),), interval)  # type: ignore[arg-type]
    )


def _window(duration: object) -> JobPolicies:
    return JobPolicies(schedule=SchedulePolicy(windows=(MaintenanceWindow("0 2 * * *", duration),)))  # type: ignore[arg-type]


# Every numeric field of the policies, with how to build policies holding `bad` there.
FIELDS: dict[str, tuple[Callable[[object], JobPolicies], bool]] = {
    # name: (builder, whole number)
    "maximumPerMinute": (lambda v: JobPolicies(RolloutPolicy(max_per_minute=v)), True),  # type: ignore[arg-type]
    "baseRatePerMinute": (lambda v: _ramp(base_per_minute=v), True),
    "incrementFactor": (lambda v: _ramp(increment_factor=v), False),
    "numberOfNotifiedThings": (lambda v: _ramp(every_notified=v), True),
    "numberOfSucceededThings": (_succeeded_ramp, True),
    "grayPercent": (lambda v: JobPolicies(RolloutPolicy(gray_percent=v)), False),  # type: ignore[arg-type]
    "thresholdPercentage": (lambda v: _abort(threshold=v), False),
    "minNumberOfExecutedThings": (lambda v: _abort(minimum=v), True),
    "inProgressTimeoutInMinutes": (lambda v: JobPolicies(timeout=TimeoutPolicy(v)), True),  # type: ignore[arg-type]
    "numberOfRetries": (lambda v: _retry(retries=v), True),
    "retryInterval": (lambda v: _retry(interval=v), True),
    "durationInMinutes": (_window, True),
}


def _bad_values(whole: bool) -> list[object]:
    return [*NOT_FINITE, *(NOT_WHOLE if whole else ["50", True])]


def test_every_policy_field_refuses_what_the_engine_cannot_compute() -> None:
    accepted = []
    for name, (build, whole) in FIELDS.items():
        for bad in _bad_values(whole):
            try:
                build(bad).validate()
            except InvalidRequest:
                continue
            accepted.append((name, bad))
    assert accepted == []


@pytest.mark.parametrize(
    ("policies", "field"),
    [
        (JobPolicies(RolloutPolicy(max_per_minute=MAX_RATE_PER_MINUTE + 1)), "maximumPerMinute"),
        (JobPolicies(RolloutPolicy(max_per_minute=2**63)), "maximumPerMinute"),
        (_ramp(every_notified=2**31), "numberOfNotifiedThings"),
        (_abort(minimum=2**64), "minNumberOfExecutedThings"),
        (_abort(threshold=10**400), "thresholdPercentage"),
        (_retry(interval=10**20), "retry interval"),
        (_retry(interval=-1), "retry interval"),
        (
            JobPolicies(schedule=SchedulePolicy(start_at=datetime(2026, 1, 1))),
            "timezone-aware",
        ),
    ],
)
def test_out_of_range_and_naive_values_are_refused(policies: JobPolicies, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        policies.validate()


def test_valid_policies_still_pass() -> None:
    for name, (build, whole) in FIELDS.items():
        good = 10 if whole else 2.0
        if name == "numberOfRetries":
            good = 2
        build(good).validate()


async def test_create_job_with_a_bad_value_in_any_field_is_refused_and_stores_nothing(
    services: Services,
) -> None:
    tenant, _ = await make_fleet(services, 3)
    accepted = []
    for name, (build, _whole) in FIELDS.items():
        for bad in NOT_FINITE:
            try:
                await group_job(services, tenant, ref=f"bad-{len(accepted)}", policies=build(bad))
            except InvalidRequest:
                continue
            accepted.append((name, bad))
    assert accepted == []
    assert await services.jobs.list_jobs(tenant) == []


async def test_update_job_with_a_bad_value_is_refused_and_changes_nothing(
    services: Services,
) -> None:
    tenant, _ = await make_fleet(services, 3)
    job = await group_job(services, tenant, policies=JobPolicies(RolloutPolicy(max_per_minute=5)))
    for name, (build, _whole) in FIELDS.items():
        for bad in NOT_FINITE:
            with pytest.raises(InvalidRequest):
                await services.jobs.update_job(tenant, job.ref, policies=build(bad))
            assert (await services.jobs.get_job(tenant, job.ref)).policies == job.policies, name
