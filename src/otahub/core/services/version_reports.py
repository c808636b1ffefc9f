"""A device reports the version it runs of a module: the report records the version
and settles the device's upgrades of that module (Alibaba decides an upgrade's
outcome by this report, not by a status update).

- an execution whose package is the reported version has succeeded;
- an execution IN_PROGRESS whose package is another version has failed, when the
  device comes back on a version that is not the one it ran before: that upgrade
  went wrong (the job's retry policy decides whether it comes back).

The steps are separate transactions, each idempotent: a report sent again after a
crash settles what the first one left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from otahub.core.services.base import ServiceContext
from otahub.core.services.executions import ExecutionService, Report
from otahub.core.services.registry import RegistryService
from otahub.domain.entities import Execution
from otahub.domain.errors import InvalidStateTransition, VersionConflict
from otahub.domain.states import ExecutionStatus, JobStatus
from otahub.store.tables import device_modules, executions, jobs, packages

S = ExecutionStatus


@dataclass(frozen=True)
class VersionOutcome:
    """What one version report settled."""

    succeeded: list[Execution] = field(default_factory=list)
    failed: list[Execution] = field(default_factory=list)


class VersionReportService:
    def __init__(
        self, ctx: ServiceContext, registry: RegistryService, executions: ExecutionService
    ) -> None:
        self.ctx = ctx
        self.registry = registry
        self.executions = executions

    async def report(self, device_id: int, module: str, version: str) -> VersionOutcome:
        before = await self._installed(device_id, module)
        await self.registry.report_version(device_id, module, version)
        succeeded = await self.executions.settle_by_version(device_id, module, version)
        if before is None or version == before:
            return VersionOutcome(succeeded)
        return VersionOutcome(succeeded, await self._fail_unexpected(device_id, module, version))

    async def _installed(self, device_id: int, module: str) -> str | None:
        q = select(device_modules.c.version).where(
            device_modules.c.device_id == device_id, device_modules.c.module == module
        )
        async with self.ctx.db.read() as conn:
            version: str | None = (await conn.execute(q)).scalar_one_or_none()
            return version

    async def _fail_unexpected(self, device_id: int, module: str, version: str) -> list[Execution]:
        q = (
            select(executions.c.job_id, executions.c.execution_number, packages.c.version)
            .join(jobs, jobs.c.id == executions.c.job_id)
            .join(packages, packages.c.id == jobs.c.package_id)
            .where(
                executions.c.device_id == device_id,
                executions.c.superseded.is_(False),
                executions.c.status == S.IN_PROGRESS.value,
                jobs.c.status == JobStatus.IN_PROGRESS.value,
                packages.c.module == module,
                packages.c.version != version,
            )
            .order_by(executions.c.job_id)
        )
        async with self.ctx.db.read() as conn:
            found = (await conn.execute(q)).all()
        failed = []
        for row in found:
            reason = f"the device reported version {version}, not {row.version}"
            report = Report(S.FAILED, execution_number=row.execution_number, reason=reason)
            try:
                failed.append(await self.executions.report(row.job_id, device_id, report))
            except (InvalidStateTransition, VersionConflict):
                continue  # it changed meanwhile; that change stands
        return failed
