"""Access keys and tenants: a key id the store cannot hold is simply unknown (every
face asks `lookup_key` before anything else), and looking a tenant up creates none."""

from __future__ import annotations

import pytest

from otahub.core.services import Services

KEY, SECRET, ACCOUNT = "AKIDACCOUNTS", "accounts-secret", "444444444444"


@pytest.mark.parametrize("key", ["\x00", f"{KEY}\x00", "key\udc80", "k" * 300])
async def test_a_key_id_the_store_cannot_hold_is_unknown(services: Services, key: str) -> None:
    await services.accounts.ensure_access_key(KEY, SECRET, ACCOUNT)
    assert await services.accounts.lookup_key(key) is None
    assert await services.accounts.lookup_key(KEY) == (SECRET, ACCOUNT)


async def test_finding_a_tenant_creates_none(services: Services) -> None:
    assert await services.accounts.find_tenant(ACCOUNT, "iot-inst") is None
    assert await services.accounts.find_tenant(ACCOUNT, "iot-inst") is None
    made = await services.accounts.tenant(ACCOUNT, "iot-inst")
    assert await services.accounts.find_tenant(ACCOUNT, "iot-inst") == made
    assert await services.accounts.find_tenant(ACCOUNT) is None
