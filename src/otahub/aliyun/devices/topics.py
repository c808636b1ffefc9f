"""The Alibaba device dialect: `/ota/device/...` and `/sys/.../thing/...` topics
(specs §5.3-§5.6) on the core's executions.

- inform: the core records the module's version and settles the tasks it decides
  (core/services/version_reports.py); tasks already notified are pushed again,
  because a push sent before the device subscribed was lost (linkkit subscribes by
  hand).
- progress: 1..100 moves the task IN_PROGRESS (the job's timeout starts there),
  -1..-4 fails it, and the job's retry policy decides whether it comes back.
- firmware/get: the device's task, marked NOTIFIED; how NeedPush=false devices
  learn of their tasks.
- file/download: blocks of the package file in the binary frame.
- notifications: an upgrade push for each newly released (NOTIFIED) task.

Any inbound message also marks its device online: external brokers report no
presence, and the engine pushes only to online devices.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from otahub.aliyun.devices.codec import (
    DEFAULT_MODULE,
    CodecError,
    ProgressReport,
    Topic,
    build_get_reply,
    build_topic,
    build_upgrade_push,
    parse_firmware_get,
    parse_inform,
    parse_progress,
    parse_topic,
)
from otahub.aliyun.devices.file_download import FileDownloads
from otahub.aliyun.devices.upgrade import Presign, upgrade_info
from otahub.core.services import Report, Services
from otahub.domain.clock import Clock
from otahub.domain.entities import Device, Execution, Job, Package
from otahub.domain.errors import InvalidStateTransition, NotFound, VersionConflict
from otahub.domain.states import ExecutionStatus, JobStatus
from otahub.gateway.messages import Outgoing, ReadRange
from otahub.gateway.recent import Recent

log = logging.getLogger("otahub.aliyun.devices")
S = ExecutionStatus
STARTED = (S.NOTIFIED, S.IN_PROGRESS)
# Pushes may describe a job or package this old (a tag changed by UpdateOTAJob
# reaches the next pushes this much later); the job's tasks themselves are read fresh,
# but for block downloads (a canceled task's file stays readable this long).
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Task:
    """A pending execution with its job and package."""

    execution: Execution
    job: Job
    package: Package

    @property
    def released(self) -> bool:
        return self.execution.released_at is not None


class AliyunTopics:
    def __init__(
        self,
        services: Services,
        clock: Clock,
        read_range: ReadRange,
        presign: Presign | None = None,
    ) -> None:
        self.services = services
        self.versions = services.version_reports
        self.clock = clock
        self.presign = presign
        self.files = FileDownloads(read_range)
        self._ids = itertools.count()
        self._jobs: Recent[Job] = Recent(CACHE_SECONDS, 256)
        self._packages: Recent[Package] = Recent(CACHE_SECONDS, 256)
        # The packages a device may read blocks of, by device: a download asks for
        # hundreds of blocks, which must not cost a database read each.
        self._readable: Recent[dict[int, Package]] = Recent(CACHE_SECONDS)

    # -- inbound --------------------------------------------------------------------

    async def handle(self, device: Device, topic: str, payload: bytes) -> list[Outgoing]:
        parsed = parse_topic(topic)
        if parsed is None:
            return []
        if (parsed.product_key, parsed.device_name) != (device.product_key, device.name):
            log.info("message on another device's topic dropped", extra={"topic": topic})
            return []
        if not device.connected:
            await self.services.registry.set_connected(device.id, True)
        try:
            if parsed.kind == "inform":
                return await self._inform(device, payload)
            if parsed.kind == "progress":
                await self._progress(device, payload)
                return []
            if parsed.kind == "firmware_get":
                return await self._firmware_get(device, parsed, payload)
            if parsed.kind == "file_download":
                return await self._file_download(device, parsed, payload)
        except CodecError as exc:
            log.info("malformed device message dropped: %s", exc, extra={"topic": topic})
        return []

    async def _inform(self, device: Device, payload: bytes) -> list[Outgoing]:
        report = parse_inform(payload)
        outcome = await self.versions.report(device.id, report.module, report.version)
        failed = {ex.job_id for ex in outcome.failed}
        tasks = [
            t
            for t in await self.tasks(device)
            if t.package.module == report.module and t.execution.job_id not in failed
        ]
        return self._pushes(
            device,
            [t for t in tasks if t.job.need_push and t.execution.status in STARTED],
            to_requester=True,
        )

    async def _progress(self, device: Device, payload: bytes) -> None:
        report = parse_progress(payload)
        for _ in range(3):  # the engine may change the task meanwhile (a timeout)
            task = _for_module(await self.tasks(device), report.module)
            if task is None:
                log.info(
                    "progress without a task dropped",
                    extra={"device": device.id, "ota_module": report.module},
                )
                return
            try:
                await self.services.executions.report(
                    task.execution.job_id, device.id, _progress_report(task.execution, report)
                )
                return
            except VersionConflict:
                continue
            except InvalidStateTransition as exc:
                log.info("progress not applied: %s", exc, extra={"device": device.id})
                return

    async def _firmware_get(self, device: Device, topic: Topic, payload: bytes) -> list[Outgoing]:
        query = parse_firmware_get(payload)
        reply = build_topic("firmware_get_reply", topic.product_key, topic.device_name)
        # A pushed job's task is handed out once released, so the rate limit holds.
        tasks = [t for t in await self.tasks(device) if t.released or not t.job.need_push]
        task = _for_module(tasks, query.module, any_module=query.module == DEFAULT_MODULE)
        if task is None:
            return [Outgoing(reply, build_get_reply(query.id, None))]
        try:
            info = upgrade_info(task.job, task.package, device, self.presign)
        except ValueError as exc:
            log.warning("task cannot be described: %s", exc, extra={"job": task.job.ref})
            return [Outgoing(reply, build_get_reply(query.id, None))]
        await self.services.executions.mark_notified(task.execution.key)
        return [Outgoing(reply, build_get_reply(query.id, info))]

    async def _file_download(self, device: Device, topic: Topic, payload: bytes) -> list[Outgoing]:
        reply = build_topic("file_download_reply", topic.product_key, topic.device_name)
        return [Outgoing(reply, await self.files.answer(payload, await self._readable_by(device)))]

    async def _readable_by(self, device: Device) -> dict[int, Package]:
        """The packages of the device's released tasks; a file is read block by block,
        so this is read again only after CACHE_SECONDS."""
        hit = self._readable.get(device.id)
        if hit is not None:
            return hit
        tasks = await self.tasks(device, cached=True)
        packages = {t.package.id: t.package for t in tasks if t.released}
        if packages:  # a task released a moment from now must be readable at once
            self._readable.put(device.id, packages)
        return packages

    # -- outbound -------------------------------------------------------------------

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution] | None = None
    ) -> list[Outgoing]:
        """The upgrade push for tasks the engine just released (QUEUED -> NOTIFIED)."""
        if "released" not in kinds:
            return []
        tasks = await self.tasks(device, pending, cached=True)
        return self._pushes(
            device,
            [t for t in tasks if t.job.need_push and t.execution.status is S.NOTIFIED],
            to_requester=False,
        )

    def _pushes(
        self, device: Device, tasks: Sequence[Task], *, to_requester: bool
    ) -> list[Outgoing]:
        if not tasks or not device.product_key:
            return []
        topic = build_topic("upgrade", device.product_key, device.name)
        out = []
        for t in tasks:
            try:
                info = upgrade_info(t.job, t.package, device, self.presign)
                payload = build_upgrade_push(info, message_id=self._message_id())
            except ValueError as exc:
                log.warning("task cannot be pushed: %s", exc, extra={"job": t.job.ref})
                continue
            out.append(Outgoing(topic, payload, to_requester=to_requester))
        return out

    def _message_id(self) -> int:
        # Alibaba's push ids are epoch milliseconds; the counter keeps them unique.
        return int(self.clock.now().timestamp() * 1000) + next(self._ids) % 1000

    # -- reading --------------------------------------------------------------------

    async def tasks(
        self, device: Device, pending: list[Execution] | None = None, *, cached: bool = False
    ) -> list[Task]:
        """The device's pending tasks in running jobs with a package: IN_PROGRESS
        first, then by queue time (CONFIRM tasks are not pending). `cached` lets a
        burst of pushes share job and package reads for a moment."""
        if pending is None:
            pending = await self.services.executions.pending_for_device(
                device.id, include_unreleased=True
            )
        found = []
        for ex in pending:
            try:
                job = await self._job(ex.job_id, cached)
                if job.status is not JobStatus.IN_PROGRESS or job.package_id is None:
                    continue
                package = await self._package(job.package_id, cached)
            except NotFound:
                continue  # deleted meanwhile
            found.append(Task(ex, job, package))
        return found

    async def _job(self, job_id: int, cached: bool) -> Job:
        hit = self._jobs.get(job_id) if cached else None
        if hit is not None:
            return hit
        job = await self.services.jobs.get_job_by_id(job_id)
        self._jobs.put(job_id, job)
        return job

    async def _package(self, package_id: int, cached: bool) -> Package:
        hit = self._packages.get(package_id) if cached else None
        if hit is not None:
            return hit
        package = await self.services.packages.get_package_by_id(package_id)
        self._packages.put(package_id, package)
        return package


def _progress_report(ex: Execution, report: ProgressReport) -> Report:
    details = {"step": str(report.step), "desc": report.desc[:1000]}
    if report.failure is None:
        return Report(
            S.IN_PROGRESS,
            status_details=details,
            execution_number=ex.execution_number,
            progress=report.step,
        )
    reason = f"{report.failure.meaning}: {report.desc}" if report.desc else report.failure.meaning
    return Report(
        S.FAILED,
        status_details=details,
        execution_number=ex.execution_number,
        reason=reason[:1000],
    )


def _for_module(tasks: Sequence[Task], module: str, *, any_module: bool = False) -> Task | None:
    for t in tasks:
        if t.package.module == module:
            return t
    return tasks[0] if any_module and tasks else None
