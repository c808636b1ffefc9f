"""Who a connecting client is, and which topics it may use."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

_SIGN = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256, "hmacmd5": hashlib.md5}


@dataclass(frozen=True)
class Identity:
    kind: str  # "aws", "aliyun" or "service"
    device_id: int | None = None
    thing: str | None = None  # AWS thing name
    product_key: str | None = None  # Alibaba
    device_name: str | None = None


@dataclass(frozen=True)
class AliyunLogin:
    product_key: str
    device_name: str
    sign_method: str
    fields: dict[str, str]  # clientId, deviceName, productKey, timestamp: what was signed


def parse_aliyun_login(client_id: str, username: str | None) -> AliyunLogin | None:
    """linkkit's `{pk}&{dn}|securemode=…,signmethod=…,timestamp=…|` client id."""
    head, sep, rest = client_id.partition("|")
    if not sep or "&" not in head:
        return None
    pk, _, dn = head.partition("&")
    params = dict(p.split("=", 1) for p in rest.rstrip("|").split(",") if "=" in p)
    method = params.get("signmethod", "").lower()
    if method not in _SIGN or not pk or not dn:
        return None
    if username is not None and username != f"{dn}&{pk}":
        return None
    fields = {"clientId": head, "deviceName": dn, "productKey": pk}
    if "timestamp" in params:
        fields["timestamp"] = params["timestamp"]
    return AliyunLogin(pk, dn, method, fields)


def aliyun_password_ok(login: AliyunLogin, device_secret: str, password: str) -> bool:
    """The password is the hex HMAC of the signed fields, sorted by name."""
    if not password.isascii():  # hex never is; and compare_digest takes only ASCII str
        return False
    text = "".join(f"{k}{login.fields[k]}" for k in sorted(login.fields))
    expected = hmac.new(device_secret.encode(), text.encode(), _SIGN[login.sign_method])
    return hmac.compare_digest(expected.hexdigest(), password.lower())


def _inside(filter_: str, prefix: str) -> bool:
    """Whether a topic (or filter) stays under `prefix` without a wildcard escaping."""
    if not filter_.startswith(prefix):
        return False
    head = prefix.rstrip("/")
    return "+" not in head and "#" not in head


def may_use(identity: Identity, topic: str) -> bool:
    """Topic isolation: a device publishes and subscribes only in its namespaces."""
    if identity.kind == "service":
        return True
    if identity.kind == "aws" and identity.thing:
        return _inside(topic, f"$aws/things/{identity.thing}/")
    if identity.kind == "aliyun" and identity.product_key and identity.device_name:
        pk, dn = identity.product_key, identity.device_name
        if _inside(topic, f"/sys/{pk}/{dn}/"):
            return True
        parts = topic.split("/")
        return (
            len(parts) == 6
            and parts[:3] == ["", "ota", "device"]
            and parts[3] not in ("+", "#")
            and parts[4:] == [pk, dn]
        )
    return False
