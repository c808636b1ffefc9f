"""Read models of the core's entities, built from database rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from otahub.domain.policies import JobPolicies
from otahub.domain.states import (
    ExecutionStatus,
    JobStatus,
    ReleaseMode,
    TargetSelection,
    VerifyState,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Tenant:
    id: int
    account_id: str
    instance_id: str


@dataclass(frozen=True)
class Product:
    id: int
    tenant_id: int
    key: str
    name: str
    description: str | None
    node_type: int
    secret: str | None
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Device:
    id: int
    tenant_id: int
    product_id: int
    name: str
    uid: str
    secret: str | None
    type_name: str | None
    attributes: dict[str, str]
    version: int
    enabled: bool
    connected: bool
    connected_at: datetime | None
    disconnected_at: datetime | None
    created_at: datetime
    changed_at: datetime
    modules: dict[str, str] = field(default_factory=dict)  # module -> installed version
    product_key: str | None = None  # filled where a query joins the product

    @property
    def is_aws_thing(self) -> bool:
        """AWS things live in the tenant's default product (key "")."""
        return self.product_key == ""


@dataclass(frozen=True)
class Group:
    id: int
    tenant_id: int
    name: str
    uid: str
    parent_id: int | None
    dynamic: bool
    query: str | None
    selector: dict[str, Any] | None
    description: str | None
    attributes: dict[str, str]
    data: dict[str, Any]
    version: int
    created_at: datetime


@dataclass(frozen=True)
class PackageFile:
    ordinal: int
    name: str | None
    blob_key: str | None = None
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    signature: bytes | None = None
    hash_algorithm: str | None = None
    signature_algorithm: str | None = None
    certificate: str | None = None
    file_type: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Package:
    id: int
    tenant_id: int
    ref: str
    product_id: int | None
    name: str
    module: str
    version: str
    source_version: str | None
    description: str | None
    verify_state: VerifyState
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    files: tuple[PackageFile, ...] = ()


@dataclass(frozen=True)
class Job:
    id: int
    tenant_id: int
    ref: str
    kind: str
    status: JobStatus
    package_id: int | None
    product_id: int | None
    document: str | None
    description: str | None
    target_selection: TargetSelection
    release_mode: ReleaseMode
    selector: dict[str, Any] | None
    only_later_matches: bool
    policies: JobPolicies
    need_push: bool
    need_confirm: bool
    is_verify: bool
    data: dict[str, Any]
    initial_done: bool
    target_cap: int | None
    materialized: int
    released: int
    rollout_stopped: bool
    force_canceled: bool
    reason_code: str | None
    comment: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    version: int
    # Why the engine's last pass over the job failed (the job is retried later), if it did.
    engine_error: str | None = None
    engine_error_at: datetime | None = None


@dataclass(frozen=True)
class Execution:
    job_id: int
    device_id: int
    execution_number: int
    status: ExecutionStatus
    version: int
    status_details: dict[str, str] | None
    progress: int | None
    queued_at: datetime
    released_at: datetime | None
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    timeout_at: datetime | None
    deadline_at: datetime | None
    retry_attempt: int
    superseded: bool
    reason: str | None
    job_ref: str | None = None
    device_name: str | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.job_id, self.device_id, self.execution_number)

    def state(self) -> dict[str, Any]:
        """What a VersionConflict / InvalidStateTransition error reports back."""
        return {
            "status": self.status.value,
            "status_details": self.status_details or {},
            "version": self.version,
        }


def row_to(cls: type[T], row: Any, **extra: Any) -> T:
    """Build a dataclass from a row (or a mapping of column to value), converting the
    enum-typed columns."""
    m = dict(row) if isinstance(row, Mapping) else dict(row._mapping)
    conv: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in m:
            conv[f.name] = m[f.name]
    if cls is Job:
        conv["status"] = JobStatus(conv["status"])
        conv["target_selection"] = TargetSelection(conv["target_selection"])
        conv["release_mode"] = ReleaseMode(conv["release_mode"])
        conv["policies"] = JobPolicies.from_json(conv["policies"])
    elif cls is Execution:
        conv["status"] = ExecutionStatus(conv["status"])
    elif cls is Package:
        conv["verify_state"] = VerifyState(conv["verify_state"])
    conv.update(extra)
    return cls(**conv)
