"""Use cases, one transaction each. Faces and the gateway call these."""

from __future__ import annotations

from dataclasses import dataclass

from otahub.core.services.accounts import AccountService
from otahub.core.services.base import ServiceContext
from otahub.core.services.certificates import CertificateService
from otahub.core.services.executions import ExecutionService, Report
from otahub.core.services.jobs import JobService, JobSpec
from otahub.core.services.modules import ModuleService
from otahub.core.services.packages import PackageService
from otahub.core.services.registry import RegistryService
from otahub.core.services.streams import StreamService
from otahub.core.services.tags import TagService
from otahub.core.services.version_reports import VersionReportService
from otahub.domain.clock import Clock
from otahub.store.db import Database


@dataclass
class Services:
    ctx: ServiceContext
    accounts: AccountService
    registry: RegistryService
    packages: PackageService
    jobs: JobService
    executions: ExecutionService
    streams: StreamService
    certificates: CertificateService
    modules: ModuleService
    tags: TagService
    version_reports: VersionReportService

    @classmethod
    def build(cls, db: Database, clock: Clock) -> Services:
        ctx = ServiceContext(db=db, clock=clock)
        registry = RegistryService(ctx)
        executions = ExecutionService(ctx)
        return cls(
            ctx=ctx,
            accounts=AccountService(ctx),
            registry=registry,
            packages=PackageService(ctx),
            jobs=JobService(ctx),
            executions=executions,
            streams=StreamService(ctx),
            certificates=CertificateService(ctx),
            modules=ModuleService(ctx),
            tags=TagService(ctx),
            version_reports=VersionReportService(ctx, registry, executions),
        )


__all__ = ["JobSpec", "Report", "Services"]
