"""Alibaba job parameters -> core `JobSpec` and `JobPolicies`: the combination rules of
specs §2.2 that the value rules (`protocol/rules.py`) cannot say alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from otahub.aliyun import firmware_data as fd
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.lookup import fail
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import from_epoch_ms
from otahub.domain import selectors as sel
from otahub.domain.entities import Package
from otahub.domain.policies import (
    EndBehavior,
    JobPolicies,
    RetryCriterion,
    RetryPolicy,
    RolloutPolicy,
    SchedulePolicy,
    TimeoutPolicy,
)
from otahub.domain.states import FailureType

VERIFY_KIND = "aliyun-verify"
STATIC_KIND = "aliyun-static"
DYNAMIC_KIND = "aliyun-dynamic"

VERIFY_JOB = "VERFIY_FIRMWARE"  # sic: the spelling of Alibaba's API metadata (specs §3.2)
UPGRADE_JOB = "UPGRADE_FIRMWARE"

SCHEDULE_EARLIEST = timedelta(minutes=5)
SCHEDULE_LATEST = timedelta(days=7)
FINISH_EARLIEST = timedelta(hours=1)
FINISH_LATEST = timedelta(days=30)


@dataclass(frozen=True)
class Settings:
    """The policies and the `Job.data` entries of one job."""

    policies: JobPolicies
    data: dict[str, Any]
    need_push: bool
    need_confirm: bool


def tags(items: Sequence[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or ()}


def _retry(params: dict[str, Any], timeout: int | None) -> RetryPolicy:
    interval, count = params.get("RetryInterval"), params.get("RetryCount")
    if interval is None and count is None:
        return RetryPolicy()
    if interval is None or count is None:
        fail(BusinessCode.INVALID_RETRY, "Give RetryInterval and RetryCount together.")
    if timeout is not None and interval >= timeout:
        fail(BusinessCode.INVALID_RETRY, "RetryInterval must be less than TimeoutInMinutes.")
    # A timeout never triggers a retry on Alibaba (specs §2.2): FAILED only.
    return RetryPolicy(
        criteria=(RetryCriterion(FailureType.FAILED, count),), interval_minutes=interval
    )


def _schedule(ctx: AliyunContext, params: dict[str, Any]) -> SchedulePolicy:
    start_ms, finish_ms = params.get("ScheduleTime"), params.get("ScheduleFinishTime")
    now = ctx.clock.now()
    start = from_epoch_ms(start_ms) if start_ms is not None else None
    if start is not None and not now + SCHEDULE_EARLIEST <= start <= now + SCHEDULE_LATEST:
        fail(BusinessCode.INVALID_SCHEDULE, "ScheduleTime is 5 minutes to 7 days ahead.")
    end = from_epoch_ms(finish_ms) if finish_ms is not None else None
    base = start or now
    if end is not None and not base + FINISH_EARLIEST <= end <= base + FINISH_LATEST:
        fail(
            BusinessCode.INVALID_SCHEDULE,
            "ScheduleFinishTime is 1 hour to 30 days after ScheduleTime.",
        )
    return SchedulePolicy(start_at=start, end_at=end, end_behavior=EndBehavior.CANCEL)


def check_download_protocol(package: Package, protocol: str) -> None:
    if protocol == "MQTT" and not fd.mqtt_capable(package):
        fail(BusinessCode.INVALID_DOWNLOAD_PROTOCOL)


def settings(
    ctx: AliyunContext,
    params: dict[str, Any],
    package: Package,
    *,
    job_type: str,
    selection_type: str,
    target_selection: str,
) -> Settings:
    timeout = params.get("TimeoutInMinutes")
    protocol = params.get("DownloadProtocol", "HTTPS")
    check_download_protocol(package, protocol)
    overwrite = params.get("OverwriteMode", 1)
    multi_module = params.get("MultiModuleMode", False)
    if overwrite == 2 and multi_module:
        fail(BusinessCode.ILLEGAL_REQUEST, "OverwriteMode 2 cannot go with MultiModuleMode.")
    gray = params.get("GrayPercent")
    rollout = RolloutPolicy(
        max_per_minute=params.get("MaximumPerMinute"),
        gray_percent=float(gray) if gray is not None else None,
        # Named devices are checked up front; a fleet-wide job leaves busy ones out.
        skip_busy=overwrite == 1 and target_selection != "SPECIFIC",
    )
    policies = JobPolicies(
        rollout=rollout,
        timeout=TimeoutPolicy(in_progress_minutes=timeout),
        retry=_retry(params, timeout),
        schedule=_schedule(ctx, params),
    )
    data: dict[str, Any] = {
        "job_type": job_type,
        "selection_type": selection_type,
        "target_selection": target_selection,
        "tags": tags(params.get("Tag")),
        "download_protocol": protocol,
        "multi_module_mode": multi_module,
        "overwrite_mode": overwrite,
    }
    optional = {
        "dynamic_mode": "DynamicMode",
        "src_versions": "SrcVersion",
        "gray_percent": "GrayPercent",
        "group_id": "GroupId",
        "retry_interval": "RetryInterval",
        "retry_count": "RetryCount",
        "timeout_minutes": "TimeoutInMinutes",
        "maximum_per_minute": "MaximumPerMinute",
        "schedule_time": "ScheduleTime",
        "schedule_finish_time": "ScheduleFinishTime",
    }
    for key, name in optional.items():
        if params.get(name) is not None:
            data[key] = params[name]
    return Settings(
        policies=policies,
        data=data,
        need_push=params.get("NeedPush", True),
        need_confirm=params.get("NeedConfirm", False),
    )


def version_selector(package: Package, src_versions: Sequence[str] | None) -> sel.Selector:
    """Devices of the package's module on one of the versions (any, when none is
    given), and not already on the package's version."""
    field = f"version:{package.module}"
    not_done = sel.Not(sel.Match(field, package.version))
    if src_versions:
        return sel.And((sel.AnyOf(field, tuple(src_versions)), not_done))
    if package.source_version:
        return sel.And((sel.Match(field, package.source_version), not_done))
    return not_done


def check_diff_versions(package: Package, src_versions: Sequence[str] | None) -> None:
    if package.source_version and any(v != package.source_version for v in src_versions or ()):
        fail(
            BusinessCode.INVALID_SRC_VERSION,
            f"For this differential package SrcVersion must be {package.source_version}.",
        )
