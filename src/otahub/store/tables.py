"""The schema. One table per core concept; see DESIGN.md's concept table.

Migrations in store/migrations create exactly this; a test checks they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from otahub.store.types import BigId, Json, UTCDateTime

# The one job kind with at most one running job per package, and the literal text
# of migration 0006's partial index (the statuses of an active job).
ONE_ACTIVE_JOB_KIND = "aliyun-dynamic"
ONE_ACTIVE_JOB_WHERE = "kind = 'aliyun-dynamic' AND status IN ('SCHEDULED', 'IN_PROGRESS')"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# -- accounts and tenancy -------------------------------------------------------------

# A tenant is an account plus an optional instance (Alibaba IotInstanceId).
tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("instance_id", String(64), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "instance_id"),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(128), primary_key=True),  # the access key id
    Column("secret", String(128), nullable=False),
    Column("account_id", String(32), nullable=False, index=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
)

# -- registry -------------------------------------------------------------------------

# Every device belongs to a product. AWS things live in the tenant's default
# product, whose key is the empty string.
products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", Text),
    Column("node_type", Integer, nullable=False, server_default="0"),
    Column("secret", String(128)),
    Column("data", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "key"),
    # Alibaba devices log in by product key alone (any instance of the account).
    Index(None, "key"),
)

modules = Table(
    "modules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("name_folded", String(64), nullable=False),  # unique ignoring case
    Column("alias", String(64)),
    Column("description", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("product_id", "name_folded"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("product_id", ForeignKey("products.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("uid", String(64), nullable=False, unique=True),  # IotId / thingId
    Column("secret", String(128)),
    Column("type_name", String(128)),
    Column("attributes", Json, nullable=False, server_default="{}"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("connected", Boolean, nullable=False, server_default=text("false")),
    Column("connected_at", UTCDateTime),
    Column("disconnected_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    # Bumped by anything a selector can see (attributes, versions, membership,
    # connection); continuous jobs scan devices changed since their last scan.
    Column("changed_at", UTCDateTime, nullable=False),
    UniqueConstraint("product_id", "name"),
    Index(None, "tenant_id", "changed_at"),
)

device_modules = Table(
    "device_modules",
    metadata,
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("module", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("reported_at", UTCDateTime, nullable=False),
    Index(None, "module", "version"),
)

device_groups = Table(
    "device_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("uid", String(64), nullable=False, unique=True),
    Column("parent_id", ForeignKey("device_groups.id")),
    Column("dynamic", Boolean, nullable=False, server_default=text("false")),
    Column("selector", Json),  # dynamic groups: the compiled query
    Column("query", Text),  # dynamic groups: the query as the user wrote it
    Column("description", Text),
    Column("attributes", Json, nullable=False, server_default="{}"),
    Column("data", Json, nullable=False, server_default="{}"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "name"),
    Index(None, "parent_id"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", ForeignKey("device_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", UTCDateTime, nullable=False),
    Index(None, "device_id"),
)

# -- packages -------------------------------------------------------------------------

packages = Table(
    "packages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("ref", String(64), nullable=False),  # FirmwareId, or an otahub id
    Column("product_id", ForeignKey("products.id")),
    Column("name", String(128), nullable=False),
    Column("module", String(64), nullable=False, server_default="default"),
    Column("version", String(64), nullable=False),
    Column("source_version", String(64)),  # differential packages
    Column("description", Text),
    Column("verify_state", String(16), nullable=False),
    Column("data", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "ref"),
)

package_files = Table(
    "package_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("package_id", ForeignKey("packages.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("name", String(255)),
    Column("blob_key", String(1024)),
    Column("url", Text),
    Column("size", BigId),
    Column("sha256", String(64)),
    Column("md5", String(32)),
    Column("signature", LargeBinary),
    Column("hash_algorithm", String(16)),
    Column("signature_algorithm", String(16)),
    Column("certificate", Text),
    Column("file_type", Integer),
    Column("attributes", Json, nullable=False, server_default="{}"),
    UniqueConstraint("package_id", "ordinal"),
)

# -- jobs and executions --------------------------------------------------------------

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("ref", String(64), nullable=False),  # AWS jobId, Alibaba JobId
    Column("kind", String(32), nullable=False),  # which face made it and how (listing only)
    Column("status", String(24), nullable=False),
    Column("package_id", ForeignKey("packages.id")),
    Column("product_id", ForeignKey("products.id")),  # restricts selectors to one product
    Column("document", Text),
    Column("description", Text),
    Column("target_selection", String(16), nullable=False),
    Column("release_mode", String(8), nullable=False),
    Column("selector", Json),  # devices targeted by query, in addition to job_targets
    Column("only_later_matches", Boolean, nullable=False, server_default=text("false")),
    Column("policies", Json, nullable=False, server_default="{}"),
    Column("need_push", Boolean, nullable=False, server_default=text("true")),
    Column("need_confirm", Boolean, nullable=False, server_default=text("false")),
    Column("is_verify", Boolean, nullable=False, server_default=text("false")),
    Column("data", Json, nullable=False, server_default="{}"),  # face-specific settings
    # Rollout bookkeeping, owned by the engine.
    Column("release_cursor", BigId, nullable=False, server_default="0"),
    Column("initial_done", Boolean, nullable=False, server_default=text("false")),
    Column("scan_from", UTCDateTime),
    Column("target_cap", Integer),
    Column("materialized", Integer, nullable=False, server_default="0"),
    Column("released", Integer, nullable=False, server_default="0"),
    Column("rate_window", Integer, nullable=False, server_default="-1"),
    Column("rate_window_count", Integer, nullable=False, server_default="0"),
    Column("rollout_stopped", Boolean, nullable=False, server_default=text("false")),
    Column("next_tick_at", UTCDateTime),  # the engine leaves the job alone until then
    # The engine's last failure on this job (cleared when a pass succeeds, or the job
    # is updated or canceled) and how many passes in a row failed, for the backoff.
    Column("engine_error", Text),
    Column("engine_error_at", UTCDateTime),
    Column("engine_failures", Integer, nullable=False, server_default="0"),
    Column("force_canceled", Boolean, nullable=False, server_default=text("false")),
    Column("reason_code", String(128)),
    Column("comment", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("version", Integer, nullable=False, server_default="1"),
    UniqueConstraint("tenant_id", "ref"),
    Index(None, "status"),
    Index(None, "package_id"),
    # At most one running job per package for the kinds that allow only one (an
    # Alibaba firmware's dynamic upgrade job): two requests at once cannot both
    # pass a check that each makes before the other commits (store/job_rules.py).
    Index(
        "uq_jobs_one_active_per_package",
        "package_id",
        unique=True,
        postgresql_where=text(ONE_ACTIVE_JOB_WHERE),
        sqlite_where=text(ONE_ACTIVE_JOB_WHERE),
    ),
)

job_targets = Table(
    "job_targets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE")),
    Column("group_id", ForeignKey("device_groups.id", ondelete="CASCADE")),
    Index(None, "job_id"),
    Index(None, "group_id"),
)

# One row per execution number of a job on a device. No surrogate key and no
# foreign keys, on purpose: a fan-out inserts up to millions of rows at once, and
# every extra index, sequence or per-row foreign-key trigger costs about as much as
# the row itself. The key leads with the job (fan-out, counts, listings); the second
# index leads with the device (the device's hot path). The services delete
# executions together with their job or device.
executions = Table(
    "executions",
    metadata,
    Column("job_id", Integer, primary_key=True),
    Column("device_id", BigId, primary_key=True),
    Column("execution_number", Integer, primary_key=True, server_default="1"),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("status_details", Json),
    Column("progress", Integer),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("released_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("timeout_at", UTCDateTime),  # in-progress deadline of the job's timeout policy
    Column("deadline_at", UTCDateTime),  # earliest of timeout_at and the step timer
    Column("retry_attempt", Integer, nullable=False, server_default="0"),
    Column("retry_pending", Boolean, nullable=False, server_default=text("false")),
    Column("superseded", Boolean, nullable=False, server_default=text("false")),
    Column("reason", Text),
    Index(None, "device_id", "status"),
    Index(
        "ix_executions_deadline",
        "deadline_at",
        postgresql_where=text("deadline_at IS NOT NULL"),
        sqlite_where=text("deadline_at IS NOT NULL"),
    ),
    sqlite_with_rowid=False,  # clustered on the key, as PostgreSQL's heap order is
)

# The transactional outbox: rows committed with the change that caused them; the
# publisher sends them and stamps sent_at. A row names one execution, or, for a
# released chunk, every first execution of the job on devices in
# (first_device_id, last_device_id]: a chunk of 50,000 releases is one row.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("job_id", Integer),
    Column("device_id", BigId),
    Column("execution_number", Integer),
    Column("first_device_id", BigId),
    Column("last_device_id", BigId),
    Column("kind", String(32), nullable=False),
    Column("payload", Json),
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime),  # a publisher is sending it until then
    Column("sent_at", UTCDateTime),
    Index(
        "ix_outbox_unsent",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)

# -- artifacts: the S3-compatible object catalog ------------------------------------

buckets = Table(
    "buckets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("name", String(63), nullable=False, unique=True),  # bucket names are global
    Column("versioning", String(16), nullable=False, server_default="Disabled"),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per stored version of an object; `version_id` is "null" in an unversioned
# bucket, as S3 spells it.
objects = Table(
    "objects",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("bucket_id", ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("version_id", String(64), nullable=False),
    Column("is_latest", Boolean, nullable=False, server_default=text("true")),
    Column("delete_marker", Boolean, nullable=False, server_default=text("false")),
    Column("blob_key", String(1024)),
    Column("size", BigId, nullable=False, server_default="0"),
    Column("etag", String(80)),
    Column("sha256", String(64)),
    Column("md5", String(32)),
    Column("content_type", String(255)),
    Column("metadata", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("bucket_id", "key", "version_id"),
    Index(None, "bucket_id", "key", "is_latest"),
)

multipart_uploads = Table(
    "multipart_uploads",
    metadata,
    Column("id", String(64), primary_key=True),  # the UploadId
    Column("bucket_id", ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("content_type", String(255)),
    Column("metadata", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
)

multipart_parts = Table(
    "multipart_parts",
    metadata,
    Column("upload_id", ForeignKey("multipart_uploads.id", ondelete="CASCADE"), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("blob_key", String(1024), nullable=False),
    Column("size", BigId, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# A file split in blocks for MQTT delivery (AWS streams; Alibaba MQTT download).
# `files` lists {"file_id", "blob_key", "size", and where it came from}.
streams = Table(
    "streams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("description", Text),
    Column("files", Json, nullable=False, server_default="[]"),
    Column("data", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "ref"),
)

# -- code signing ---------------------------------------------------------------------

signing_profiles = Table(
    "signing_profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("platform_id", String(64)),
    Column("status", String(16), nullable=False),  # Active, Canceled, Revoked
    Column("material", Json, nullable=False),  # algorithm, key and certificate PEM
    Column("data", Json, nullable=False, server_default="{}"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "name", "version"),
)

signing_jobs = Table(
    "signing_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("profile_id", ForeignKey("signing_profiles.id"), nullable=False),
    Column("status", String(16), nullable=False),  # InProgress, Succeeded, Failed
    Column("status_reason", Text),
    Column("source", Json, nullable=False),
    Column("destination", Json, nullable=False),
    Column("signature", LargeBinary),
    Column("signed_object", Json),
    Column("client_token", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index(None, "tenant_id", "client_token"),
)

# -- device identity ------------------------------------------------------------------

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 hex of the DER
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("pem", Text, nullable=False),
    Column("status", String(16), nullable=False),  # ACTIVE, INACTIVE, REVOKED
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

certificate_devices = Table(
    "certificate_devices",
    metadata,
    Column("certificate_id", ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("exclusive", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "device_id"),
)

# -- AWS OTA updates ------------------------------------------------------------------

ota_updates = Table(
    "ota_updates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("job_id", ForeignKey("jobs.id", ondelete="SET NULL")),
    Column("stream_id", ForeignKey("streams.id", ondelete="SET NULL")),
    Column("request", Json, nullable=False),  # the inputs, echoed by GetOTAUpdate
    Column("error", Json),
    # What the build made or will make, so that a resumed build finds it (core.services.ota_updates)
    Column("build", Json),
    Column("claimed_until", UTCDateTime),  # a builder owns the update until then
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "ref"),
)

tags = Table(
    "tags",
    metadata,
    Column("tenant_id", ForeignKey("tenants.id"), primary_key=True),
    Column("resource", String(2048), primary_key=True),  # an ARN or kind/ref
    Column("key", String(128), primary_key=True),
    Column("value", String(1024), nullable=False),
)

__all__ = [
    "access_keys",
    "device_groups",
    "device_modules",
    "devices",
    "executions",
    "group_members",
    "job_targets",
    "jobs",
    "metadata",
    "modules",
    "outbox",
    "package_files",
    "packages",
    "products",
    "tags",
    "tenants",
]
