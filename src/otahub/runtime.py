"""The parts of one running otahub process and their start and stop order."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from starlette.types import ASGIApp

from otahub.aliyun.app import AliyunApp, AliyunDeps
from otahub.aliyun.devices.bridged import BridgedAliyun
from otahub.aliyun.devices.topics import AliyunTopics
from otahub.aliyun.handlers import all_handlers as aliyun_handlers
from otahub.aliyun.oss import OssUploadApp
from otahub.aliyun.protocol.ratelimits import limiter_from_spec
from otahub.aws.devices.bridged import BridgedJobs, BridgedStreams
from otahub.aws.devices.documents import DocumentRenderer
from otahub.aws.devices.jobs_mqtt import JobsTopics, RenderDocument
from otahub.aws.devices.streams_mqtt import StreamTopics
from otahub.aws.handlers import all_handlers
from otahub.aws.handlers.ota import ota_update_service
from otahub.aws.s3 import S3App
from otahub.aws.wire.app import AwsApp, AwsDeps
from otahub.aws.wire.throttle import AccountThrottle
from otahub.blobs.base import BlobStore
from otahub.blobs.factory import blob_store_from_url
from otahub.blobs.presign import PresignVerifier
from otahub.config import Settings
from otahub.core.engine import Engine, EngineSettings
from otahub.core.outbox import Notification, OutboxPublisher
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.signing import SigningService
from otahub.credentials import RootCredentials, derive_secret, load_or_create
from otahub.domain.clock import Clock, SystemClock
from otahub.domain.entities import Device
from otahub.gateway.bridge import DeviceBridge, Notifier, TopicHandler
from otahub.gateway.download_urls import DeviceUrls
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.embedded.transport import EmbeddedTransport
from otahub.gateway.external import ExternalBroker
from otahub.gateway.hooks import BrokerHooks
from otahub.gateway.logins import DeviceLogins
from otahub.gateway.messages import ReadRange
from otahub.store.db import Database
from otahub.store.leases import Lease
from otahub.store.migrate import migrate

log = logging.getLogger("otahub.runtime")

AWS_TOPICS_LEASE = 72_625_331  # advisory-lock key: who subscribes the `$aws` topics
DEVICE_URL_EXPIRES_S = 3600  # the longest a presigned download URL may live


def device_bridge(
    services: Services,
    clock: Clock,
    read_range: ReadRange,
    *,
    default_tenant: int | None = None,
    aliyun: AliyunTopics | None = None,
    render_document: RenderDocument | None = None,
) -> DeviceBridge:
    """The device bridge over the AWS Jobs and Streams topics, and the Alibaba topics
    when given."""
    jobs = BridgedJobs(JobsTopics(services, clock, render_document), services.registry)
    handlers: list[TopicHandler] = [
        jobs,
        BridgedStreams(StreamTopics(services, read_range), services.registry),
    ]
    notifiers: list[Notifier] = [jobs]
    if aliyun is not None:
        alibaba = BridgedAliyun(aliyun, services.registry)
        handlers.append(alibaba)
        notifiers.append(alibaba)
    return DeviceBridge(services, handlers, notifiers, default_tenant=default_tenant)


class Runtime:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.resolved_database_url())
        self.services = Services.build(self.db, self.clock)
        self.engine = Engine(self.db, self.clock, EngineSettings(interval=settings.engine_interval))
        self.blobs: BlobStore = blob_store_from_url(settings.blob_url, settings.data_dir)
        self.objects = ObjectService(self.services.ctx, self.blobs)
        self.signing = SigningService(self.services.ctx, self.objects)
        # An OTA update's build cut short by a crash is resumed by the engine.
        self.engine.resumers.append(
            ota_update_service(self.services, self.objects, self.signing).resume
        )
        self.downloads: PresignVerifier | None = None
        # ASGI apps of the protocol faces, by name ("aws", "aliyun"); see app.FaceRouter.
        self.faces: dict[str, ASGIApp] = {}
        self.bridge: DeviceBridge | None = None
        self.external: ExternalBroker | None = None
        self.embedded: EmbeddedTransport | None = None
        self.ca: CertificateAuthority | None = None
        self.hooks: BrokerHooks | None = None
        self.lease = Lease(self.db, AWS_TOPICS_LEASE)
        self.outbox = OutboxPublisher(self.db, self.clock, self._deliver)
        self.credentials: RootCredentials | None = None
        self.ready = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await migrate(self.db)
        key_id = self.settings.access_key_id
        known = await self.services.accounts.lookup_key(key_id) if key_id else None
        # Processes sharing a database share the account their key already has.
        self.credentials = load_or_create(
            self.settings.data_dir,
            key_id,
            self.settings.secret_access_key,
            account_id=known[1] if known else None,
        )
        self.downloads = PresignVerifier(
            derive_secret(self.credentials.secret_access_key, "device-downloads"), self.clock
        )
        self.device_urls = DeviceUrls(self.blobs, self.downloads, self.settings.http_base)
        self.render_document = DocumentRenderer(self.objects, self.device_urls)
        await self.services.accounts.ensure_access_key(
            self.credentials.access_key_id,
            self.credentials.secret_access_key,
            self.credentials.account_id,
        )
        tenant = await self.services.accounts.tenant(self.credentials.account_id)
        self.ca = CertificateAuthority(self.settings.data_dir / "ca")
        self.hooks = BrokerHooks(
            DeviceLogins(self.services, tenant.id, self.service_password),
            self.services.registry,
            self.settings.hook_token,
        )
        self.faces["aws"] = AwsApp(
            self.services,
            self.clock,
            all_handlers(),
            AwsDeps(
                self.objects,
                self.signing,
                self.downloads,
                self.settings.http_base,
                self._endpoints(),
                self.render_document,
                self.ca.issue_device,
            ),
            s3=S3App(self.services, self.objects, self.clock),
            throttle=AccountThrottle.from_settings(
                self.clock, self.settings.aws_request_rate, self.settings.aws_request_burst
            ),
        )
        self._start_aliyun_face()
        self.bridge = device_bridge(
            self.services,
            self.clock,
            self._read_range,
            default_tenant=tenant.id,
            aliyun=AliyunTopics(self.services, self.clock, self._read_range, self._device_url),
            render_document=self.render_document,
        )
        self._tasks = [asyncio.create_task(self.engine.run(self._stop), name="engine")]
        if self.settings.broker_url:
            self.external = ExternalBroker(
                self.settings.broker_url,
                self.bridge,
                client_id=f"otahub-{socket.gethostname()}-{self.settings.port}",
                share_group=self.settings.share_group,
                owns_aws_topics=self.lease.held,
            )
            self._tasks += [
                asyncio.create_task(self.lease.run(self._stop), name="lease"),
                asyncio.create_task(self.external.run(self._stop), name="broker"),
            ]
        else:
            self.embedded = EmbeddedTransport(
                self.services,
                self.bridge,
                tenant_id=tenant.id,
                host=self.settings.host,
                port=self.settings.mqtt_port,
                tls_port=self.settings.mqtts_port,
                ca=self.ca,
                service_password=self.service_password,
                tls_names=[self.settings.public_host] if self.settings.public_host else [],
            )
            await self.embedded.start()
        self._tasks.append(
            asyncio.create_task(self.outbox.run(self._stop, ready=self._can_deliver), name="outbox")
        )
        self.ready = True
        log.info("runtime started")

    def _start_aliyun_face(self) -> None:
        self.faces["aliyun"] = AliyunApp(
            self.services,
            self.clock,
            aliyun_handlers(),
            AliyunDeps(self.objects, self.settings.http_base),
            limiter=limiter_from_spec(self.clock, self.settings.aliyun_rate_limits),
        )
        self.faces["aliyun-oss"] = OssUploadApp(self.services, self.objects, self.clock)

    async def stop(self) -> None:
        self.ready = False
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                task.cancel()
        if self.embedded is not None:
            await self.embedded.stop()
        await self.db.dispose()
        log.info("runtime stopped")

    def _endpoints(self) -> dict[str, str]:
        host = self.settings.public_host or self.settings.host
        return {
            kind: host
            for kind in ("iot:Data", "iot:Data-ATS", "iot:Jobs", "iot:CredentialProvider")
        }

    @property
    def transport(self) -> ExternalBroker | EmbeddedTransport | None:
        return self.external or self.embedded

    @property
    def service_password(self) -> str:
        """The password of otahub's own MQTT identity (user `otahub`): the one in
        `--broker-url` when it names one, so that a broker asking otahub's HTTP hooks
        lets otahub itself in; otherwise derived from the root secret."""
        given = urlsplit(self.settings.broker_url).password if self.settings.broker_url else None
        if given:
            return unquote(given)
        assert self.credentials is not None
        return derive_secret(self.credentials.secret_access_key, "mqtt-service").hex()

    def _can_deliver(self) -> bool:
        return self.transport is not None and self.transport.is_connected()

    async def _deliver(self, batch: Sequence[Notification]) -> None:
        if self.transport is None:
            raise RuntimeError("no device transport")
        await self.transport.sink(batch)

    def _device_url(self, device: Device, blob_key: str) -> str:
        """The download URL an Alibaba push carries."""
        return self.device_urls.url(blob_key, device.id, DEVICE_URL_EXPIRES_S)

    async def _read_range(self, blob_key: str, start: int, length: int) -> bytes:
        return b"".join([c async for c in self.blobs.open_range(blob_key, start, start + length)])
