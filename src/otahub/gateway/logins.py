"""Who a connecting MQTT client is: one set of rules for the embedded broker and for
the HTTP hooks a production broker calls."""

from __future__ import annotations

import hashlib
import hmac

from otahub.core.services import Services
from otahub.domain.limits import Refused, check_text
from otahub.gateway.embedded.identity import Identity, aliyun_password_ok, parse_aliyun_login

SERVICE_USER = "otahub"
"""The user name of otahub's own MQTT client."""

MAX_CREDENTIAL_CHARS = 1024
"""Longest client id, user name or password looked at: far above any real one (AWS
IoT's client ids stop at 128 bytes, a linkkit login is under 200 characters)."""


def plausible(*credentials: str | None) -> bool:
    """Whether credentials are worth checking: not oversized, and text the registry
    can be asked about (no NUL, no lone surrogate). Anything else is refused unread."""
    for text in credentials:
        if text is None:
            continue
        if len(text) > MAX_CREDENTIAL_CHARS:
            return False
        try:
            check_text(text, "a credential")
        except Refused:
            return False
    return True


def certificate_id(der: bytes) -> str:
    """A certificate's id in the registry: the SHA-256 of its DER form."""
    return hashlib.sha256(der).hexdigest()


class DeviceLogins:
    def __init__(self, services: Services, tenant_id: int, service_password: str) -> None:
        self.services = services
        self.tenant_id = tenant_id
        self.service_password = service_password

    async def login(
        self,
        client_id: str,
        username: str | None,
        password: str | None,
        certificate_der: bytes | None,
    ) -> Identity | None:
        """Check a CONNECT: a client certificate (AWS things), otahub's own password,
        or linkkit's device-secret HMAC (Alibaba devices). None refuses it."""
        if not plausible(client_id, username, password):
            return None
        if certificate_der:
            thing = await self.services.certificates.device_for(
                certificate_id(certificate_der), client_id
            )
            # Only as the thing its client id names: a certificate attached to thing A
            # is no login for thing B, whose live session the login would take over.
            if thing is None or not thing.is_aws_thing or thing.name != client_id:
                return None
            return Identity("aws", thing.id, thing=thing.name)
        if username == SERVICE_USER:
            given = (password or "").encode()
            expected = self.service_password.encode()
            return Identity("service") if hmac.compare_digest(given, expected) else None
        return await self._aliyun(client_id, username, check_password=password or "")

    async def authorized(self, client_id: str, username: str | None) -> Identity | None:
        """Who a client is that the broker has already let in (no secret to check)."""
        if not plausible(client_id, username):
            return None
        if username == SERVICE_USER:
            return Identity("service")
        if parse_aliyun_login(client_id, username) is not None:
            return await self._aliyun(client_id, username, check_password=None)
        thing = await self.services.registry.find_device(self.tenant_id, client_id)
        if thing is None or not thing.is_aws_thing:
            return None
        return Identity("aws", thing.id, thing=thing.name)

    async def _aliyun(
        self, client_id: str, username: str | None, *, check_password: str | None
    ) -> Identity | None:
        """`check_password` None: the broker has checked the login already."""
        login = parse_aliyun_login(client_id, username)
        if login is None:
            return None
        # Any instance (IotInstanceId) of the account: a login names no instance.
        device = await self.services.registry.find_by_product_key(
            self.tenant_id, login.product_key, login.device_name
        )
        if device is None or not device.secret:
            return None
        if check_password is not None and not aliyun_password_ok(
            login, device.secret, check_password
        ):
            return None
        return Identity(
            "aliyun", device.id, product_key=login.product_key, device_name=login.device_name
        )
