"""Lookups the gateway makes for a connecting device: an Alibaba device by product
key in any instance of its account, and connection events that arrive late."""

from __future__ import annotations

from datetime import timedelta

from otahub.core.services import Services
from otahub.domain.clock import FakeClock


async def test_device_found_by_product_key_in_any_instance_of_the_account(
    services: Services,
) -> None:
    default = await services.accounts.tenant("111111111111")
    instance = await services.accounts.tenant("111111111111", "iot-inst-1")
    other_account = await services.accounts.tenant("222222222222")
    await services.registry.create_product(instance.id, "a1instpk", "p")
    made = await services.registry.create_device(
        instance.id, "dev", product_key="a1instpk", secret="s"
    )
    found = await services.registry.find_by_product_key(default.id, "a1instpk", "dev")
    assert found is not None and found.id == made.id and found.product_key == "a1instpk"
    assert found.tenant_id == instance.id
    # Same from the instance itself; never from another account.
    assert await services.registry.find_by_product_key(instance.id, "a1instpk", "dev")
    assert await services.registry.find_by_product_key(other_account.id, "a1instpk", "dev") is None
    assert await services.registry.find_by_product_key(default.id, "a1instpk", "nodev") is None
    # AWS things sit under every tenant's default product (key ""): never by key.
    await services.registry.create_device(default.id, "thing")
    assert await services.registry.find_by_product_key(default.id, "", "thing") is None
    # A key held in two instances (products made outside the API) names no device.
    other_instance = await services.accounts.tenant("111111111111", "iot-inst-2")
    await services.registry.create_product(other_instance.id, "a1instpk", "p")
    await services.registry.create_device(other_instance.id, "dev", product_key="a1instpk")
    assert await services.registry.find_by_product_key(default.id, "a1instpk", "dev") is None


async def test_late_connection_events_are_ignored(services: Services, clock: FakeClock) -> None:
    tenant = await services.accounts.tenant("333333333333")
    device = await services.registry.create_device(tenant.id, "presence")
    t0 = clock.now()
    assert await services.registry.set_connected(device.id, True, at=t0)
    # A disconnect stamped before that connect arrives late: ignored.
    assert not await services.registry.set_connected(device.id, False, at=t0 - timedelta(seconds=1))
    [now] = await services.registry.get_devices([device.id])
    assert now.connected and now.connected_at == t0
    assert await services.registry.set_connected(device.id, False, at=t0 + timedelta(seconds=1))
    [now] = await services.registry.get_devices([device.id])
    assert not now.connected and now.disconnected_at == t0 + timedelta(seconds=1)
    # A connect older than that disconnect too; without a time, an event always counts.
    assert not await services.registry.set_connected(device.id, True, at=t0)
    assert await services.registry.set_connected(device.id, True)
    [now] = await services.registry.get_devices([device.id])
    assert now.connected
