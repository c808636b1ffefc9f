"""The Alibaba device topics as the shared device bridge dispatches to them: the
OTA topics (`/ota/device/...`, `/sys/{pk}/{dn}/thing/...`) and the upgrade pushes of
every device that is not an AWS thing."""

from __future__ import annotations

from collections.abc import Sequence

from otahub.aliyun.devices.codec import parse_topic
from otahub.aliyun.devices.topics import AliyunTopics
from otahub.core.services.registry import RegistryService
from otahub.domain.entities import Device, Execution
from otahub.gateway.messages import Outgoing


class BridgedAliyun:
    concurrent = False  # each device finds the job and package the one before cached

    def __init__(self, topics: AliyunTopics, registry: RegistryService) -> None:
        self.topics = topics
        self.registry = registry

    def handles(self, topic: str) -> bool:
        return parse_topic(topic) is not None

    async def on_message(
        self, device: Device, topic: str, payload: bytes, qos: int
    ) -> list[Outgoing]:
        return await self.topics.handle(device, topic, payload)

    async def device_for_topic(self, tenant_id: int, topic: str) -> Device | None:
        """In any instance of the account: product keys are unique to it."""
        parsed = parse_topic(topic)
        if parsed is None:
            return None
        return await self.registry.find_by_product_key(
            tenant_id, parsed.product_key, parsed.device_name
        )

    def renders(self, device: Device) -> bool:
        return not device.is_aws_thing

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution]
    ) -> list[Outgoing]:
        return await self.topics.notifications(device, kinds, pending)
