"""The device Jobs API: what a device asks of its job executions, whatever carries
the request (AWS's MQTT topics and its iot-jobs-data HTTP plane alike).

Each request reads the device's pending list at most once. The answers are domain
values; the faces render them in their dialect and map the domain errors.

When notify and notify-next go out: after a change of the device's pending set,
which the outbox reports (a job released, an execution finished, canceled or
deleted). A device's own requests do not change which execution is next: start-next
starts the head of the list, and an update that ends an execution writes an outbox
row, whose notifications follow from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from otahub.core.services.batching import SingleFlight
from otahub.core.services.executions import ExecutionService, Report
from otahub.core.services.jobs import JobService
from otahub.domain.entities import Device, Execution, Job
from otahub.domain.states import ExecutionStatus

S = ExecutionStatus
NOTIFY_LIMIT = 10  # executions a notify lists

# The job document as one device receives it (its own presigned URLs, say).
RenderDocument = Callable[[Job, Device, str | None], Awaitable[str | None]]


@dataclass(frozen=True)
class PendingJobs:
    """The device's released pending executions, as GetPendingJobExecutions splits them."""

    in_progress: list[Execution]
    queued: list[Execution]

    @classmethod
    def split(cls, pending: list[Execution]) -> PendingJobs:
        return cls(
            in_progress=[e for e in pending if e.status is S.IN_PROGRESS],
            queued=[e for e in pending if e.status is not S.IN_PROGRESS],
        )


@dataclass(frozen=True)
class Handed:
    """An execution as its device is handed it, with the document it receives."""

    execution: Execution
    document: str | None


@dataclass(frozen=True)
class Updated:
    """An execution after the device's update, and its job's stored document when
    the device asked for it."""

    execution: Execution
    document: str | None = None


@dataclass(frozen=True)
class Notices:
    """notify and notify-next after the device's pending set changed: the first
    NOTIFY_LIMIT pending executions, and the next one (None: nothing is pending)."""

    listed: list[Execution]
    next: Handed | None


class DeviceJobService:
    def __init__(
        self, executions: ExecutionService, jobs: JobService, render: RenderDocument | None = None
    ) -> None:
        self.executions = executions
        self.jobs = jobs
        self.render = render
        self._jobs: dict[int, Job] = {}
        self._load_job = SingleFlight(jobs.get_job_by_id)

    async def pending(self, device: Device) -> PendingJobs:
        return PendingJobs.split(await self.executions.pending_for_device(device.id))

    async def pending_for_thing(self, tenant_id: int, name: str) -> PendingJobs | None:
        """`pending` of a device known by name, in the one query of the check-in's
        hot path; None when there is no such device."""
        found = await self.executions.pending_for_thing(tenant_id, name)
        return None if found is None else PendingJobs.split(found)

    async def start_next(
        self,
        device: Device,
        *,
        status_details: Mapping[str, str] | None = None,
        step_timeout_minutes: int | None = None,
    ) -> Handed | None:
        """Start the head of the device's queue (an IN_PROGRESS head as it is); None
        when nothing is pending."""
        head = await self._head(device)
        if head is None:
            return None
        started = await self.executions.start(
            head, status_details=status_details, step_timeout_minutes=step_timeout_minutes
        )
        return await self.handed(device, started)

    async def describe(
        self, device: Device, job_ref: str, *, execution_number: int | None = None
    ) -> Handed | None:
        """The device's execution of job `job_ref` ("$next": the head of its queue,
        None when nothing is pending)."""
        if job_ref == "$next":
            head = await self._head(device)
            return None if head is None else await self.handed(device, head)
        job = await self.jobs.get_job(device.tenant_id, job_ref)
        ex = await self.executions.get(job.id, device.id, execution_number)
        return await self.handed(device, ex)

    async def update(
        self, device: Device, job_ref: str, report: Report, *, with_document: bool = False
    ) -> Updated:
        ex = await self.executions.report_by_ref(device.tenant_id, job_ref, device.id, report)
        if not with_document:
            return Updated(ex)
        job = await self.jobs.get_job_by_id(ex.job_id)
        return Updated(ex, job.document)

    async def notices(self, device: Device, pending: list[Execution] | None = None) -> Notices:
        """What notify and notify-next say after the device's pending set changed;
        `pending`: that set, when the caller has read it already."""
        if pending is None:
            pending = await self.executions.pending_for_device(device.id)
        nxt = await self.handed(device, pending[0]) if pending else None
        return Notices(listed=pending[:NOTIFY_LIMIT], next=nxt)

    async def handed(self, device: Device, ex: Execution) -> Handed:
        return Handed(ex, await self.document(ex.job_id, device))

    async def document(self, job_id: int, device: Device) -> str | None:
        """The job document as this device receives it."""
        job = self._jobs.get(job_id)
        if job is None:
            # Devices rendered together (a release's notifications) load the job once.
            job = self._jobs[job_id] = await self._load_job.get(job_id)
        if self.render is None:
            return job.document
        return await self.render(job, device, job.document)

    async def _head(self, device: Device) -> Execution | None:
        pending = await self.executions.pending_for_device(device.id, limit=1)
        return pending[0] if pending else None
