"""The AWS device topics as the shared device bridge dispatches to them: Jobs
(`$aws/things/{thing}/jobs/...`, and notify / notify-next for AWS things) and
Streams (`$aws/things/{thing}/streams/...`)."""

from __future__ import annotations

from collections.abc import Sequence

from otahub.aws.devices.jobs_mqtt import PREFIX, JobsTopics
from otahub.aws.devices.streams_mqtt import StreamTopics
from otahub.core.services.registry import RegistryService
from otahub.domain.entities import Device, Execution
from otahub.gateway.bridge import STREAM_SENDER_S
from otahub.gateway.messages import Outgoing
from otahub.gateway.recent import Recent


def thing_name(topic: str) -> str:
    return topic[len(PREFIX) :].split("/", 1)[0]


class BridgedJobs:
    concurrent = True  # the things of a batch share their job and its document

    def __init__(self, topics: JobsTopics, registry: RegistryService) -> None:
        self.topics = topics
        self.registry = registry

    def handles(self, topic: str) -> bool:
        return topic.startswith(PREFIX) and "/jobs/" in topic

    async def on_message(
        self, device: Device, topic: str, payload: bytes, qos: int
    ) -> list[Outgoing]:
        return await self.topics.handle(device, topic, payload)

    async def device_for_topic(self, tenant_id: int, topic: str) -> Device | None:
        return await self.registry.find_device(tenant_id, thing_name(topic))

    def renders(self, device: Device) -> bool:
        return device.is_aws_thing

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution]
    ) -> list[Outgoing]:
        return await self.topics.notifications(device, kinds, pending)


class BridgedStreams:
    def __init__(self, topics: StreamTopics, registry: RegistryService) -> None:
        self.topics = topics
        self.registry = registry
        self._senders: Recent[Device] = Recent(STREAM_SENDER_S)

    def handles(self, topic: str) -> bool:
        return topic.startswith(PREFIX) and "/streams/" in topic

    async def on_message(
        self, device: Device, topic: str, payload: bytes, qos: int
    ) -> list[Outgoing]:
        return await self.topics.handle(device, topic, payload, qos)

    async def device_for_topic(self, tenant_id: int, topic: str) -> Device | None:
        """As found a moment ago: a device fetching a file asks window after window."""
        name = thing_name(topic)
        device = self._senders.get(name)
        if device is None:
            device = await self.registry.find_device(tenant_id, name)
            if device is not None:
                self._senders.put(name, device)
        return device
