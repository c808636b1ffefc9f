"""Device logins (gateway/logins.py), one set of rules for the embedded broker and
the EMQX hooks: a thing's certificate logs in only as that thing, and hostile
credentials are refused (None), never an exception."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from otahub.core.services import Services
from otahub.gateway.embedded.identity import Identity
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.logins import SERVICE_USER, DeviceLogins
from tests.unit.gateway.certified import certified_thing

PK, DN, SECRET = "a1product", "dev1", "device-secret"
CLIENT_ID = f"{PK}&{DN}|securemode=3,signmethod=hmacsha1,timestamp=1700000000|"
USERNAME = f"{DN}&{PK}"


def der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)


def linkkit_password(secret: str = SECRET) -> str:
    text = f"clientId{PK}&{DN}deviceName{DN}productKey{PK}timestamp1700000000"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()


@pytest.fixture
async def logins(services: Services) -> DeviceLogins:
    tenant = await services.accounts.tenant("1")
    await services.registry.create_product(tenant.id, PK, "p")
    await services.registry.create_device(tenant.id, DN, product_key=PK, secret=SECRET)
    return DeviceLogins(services, tenant.id, "service-password")


async def test_a_certificate_logs_in_only_as_the_thing_its_client_id_names(
    services: Services, logins: DeviceLogins, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    a = der((await certified_thing(services, logins.tenant_id, ca, "thing-a")).certificate_pem)
    await certified_thing(services, logins.tenant_id, ca, "thing-b")
    found = await logins.login("thing-a", None, None, a)
    assert found is not None and (found.kind, found.thing) == ("aws", "thing-a")
    for other in ("thing-b", "nobody", "", f"{PK}&{DN}"):
        assert await logins.login(other, None, None, a) is None, other


async def test_the_linkkit_login_still_works(logins: DeviceLogins) -> None:
    found = await logins.login(CLIENT_ID, USERNAME, linkkit_password(), None)
    assert found == Identity("aliyun", found.device_id if found else None, None, PK, DN)
    assert await logins.login(CLIENT_ID, USERNAME, linkkit_password("wrong"), None) is None
    service = await logins.login("otahub-1", SERVICE_USER, "service-password", None)
    assert service == Identity("service")
    assert await logins.login("otahub-1", SERVICE_USER, "service-passwörd", None) is None


HOSTILE: dict[str, tuple[str, str | None, str | None]] = {
    "non-ascii-password": (CLIENT_ID, USERNAME, "ü" * 40),
    "accented-password": (CLIENT_ID, USERNAME, "é"),
    "surrogate-password": (CLIENT_ID, USERNAME, "\ud800" * 40),
    "40kb-password": (CLIENT_ID, USERNAME, "0" * 40_000),
    "nul-password": (CLIENT_ID, USERNAME, "ab\x00cd"),
    "nul-client-id": (CLIENT_ID.replace(DN, DN + "\x00"), USERNAME, "0" * 40),
    "nul-username": (CLIENT_ID, USERNAME.replace(DN, DN + "\x00"), "0" * 40),
    "50kb-username": (CLIENT_ID, "u" * 50_000, "0" * 40),
    "nul-thing": ("t\x00hing", None, None),
    "surrogate-thing": ("\udcff", None, None),
    "60kb-thing": ("x" * 60_000, None, None),
    "30kb-service-password": ("x", SERVICE_USER, "ü" * 30_000),
    "nul-service-password": ("x", SERVICE_USER, "\x00"),
}


@pytest.mark.parametrize(
    ("client_id", "username", "password"), list(HOSTILE.values()), ids=list(HOSTILE)
)
async def test_hostile_credentials_are_refused_without_an_error(
    logins: DeviceLogins, client_id: str, username: str | None, password: str | None
) -> None:
    assert await logins.login(client_id, username, password, None) is None
    if password is None:
        assert await logins.authorized(client_id, username) is None
