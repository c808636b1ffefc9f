"""A running otahub process and aliyun-python-sdk-iot clients pointed at it."""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest

from tests.integration.server import ServerProcess

KEY, SECRET = "LTAIotahubAliyunTest", "otahub-aliyun-test-secret"
REGION = "cn-shanghai"


def start_server(data: Path, rate_limits: str | None) -> ServerProcess:
    env = {"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET}
    if rate_limits is not None:
        env["OTAHUB_ALIYUN_RATE_LIMITS"] = rate_limits
    return ServerProcess(data, env=env).start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Without Alibaba's per-second limits, so tests may call as fast as they like;
    `limited_server` has them."""
    proc = start_server(Path(tmp_path_factory.mktemp("aliyun-server")), "off")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(Path(tmp_path_factory.mktemp("aliyun-limited")), None)
    yield proc
    proc.stop()


def make_client(server: ServerProcess, key: str = KEY, secret: str = SECRET) -> AcsClient:
    # The SDK ignores NO_PROXY (specs §1.4): no proxy for 127.0.0.1.
    client = AcsClient(key, secret, REGION, proxy={"http": None, "https": None})
    client.add_endpoint(REGION, "Iot", f"127.0.0.1:{server.port}")
    return client


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> AcsClient:
    return make_client(server)


def request(action: str, **params: Any) -> RpcRequest:
    """The SDK's own request class for `action`, filled through its setters."""
    module = importlib.import_module(f"aliyunsdkiot.request.v20180120.{action}Request")
    req: RpcRequest = getattr(module, f"{action}Request")()
    for name, value in params.items():
        getattr(req, f"set_{name}")(value)
    return req


def call(client: AcsClient, action: str, **params: Any) -> dict[str, Any]:
    """The parsed body of a 2xx answer (business errors included: `Success` false)."""
    body = client.do_action_with_exception(request(action, **params))
    result: dict[str, Any] = json.loads(body)
    return result


def ok(client: AcsClient, action: str, **params: Any) -> dict[str, Any]:
    result = call(client, action, **params)
    assert result["Success"] is True, result
    return result


def refused(client: AcsClient, action: str, code: str, **params: Any) -> dict[str, Any]:
    result = call(client, action, **params)
    assert result["Success"] is False, result
    assert result["Code"] == code, result
    assert result["ErrorMessage"]
    assert result["RequestId"]
    return result


def wait_for(fn: Callable[[], Any], timeout: float = 15) -> Any:
    """Poll `fn` until it returns something true (the engine ticks once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


_counter = iter(range(1, 1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000) % 10_000_000}{next(_counter)}"


def product(client: AcsClient) -> str:
    key: str = ok(client, "CreateProduct", ProductName=unique("prod_"), NodeType=0)["ProductKey"]
    return key


def devices(client: AcsClient, pk: str, count: int) -> list[str]:
    names = []
    for _ in range(count):
        name = unique("dev-")
        ok(client, "RegisterDevice", ProductKey=pk, DeviceName=name)
        names.append(name)
    return names


def upload(client: AcsClient, content: bytes, suffix: str = "bin", **params: Any) -> str:
    """GenerateOTAUploadURL, then the multipart POST a browser or script would send."""
    data = ok(client, "GenerateOTAUploadURL", FileSuffix=suffix, **params)["Data"]
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["OSSAccessKeyId"],
        "signature": data["Signature"],
        "success_action_status": "200",
    }
    response = httpx.post(data["Host"], data=form, files={"file": ("fw.bin", content)})
    assert response.status_code == 200, response.text
    url: str = data["FirmwareUrl"]
    return url


def firmware(
    client: AcsClient,
    pk: str,
    content: bytes = b"firmware image " * 100,
    *,
    version: str = "2.0.0",
    need_to_verify: bool = True,
    **params: Any,
) -> str:
    url = upload(client, content)
    fid: str = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion=version,
        FirmwareUrl=url,
        FirmwareSign=hashlib.md5(content).hexdigest(),
        SignMethod="MD5",
        NeedToVerify=need_to_verify,
        **params,
    )["Data"]["FirmwareId"]
    return fid


def tasks(client: AcsClient, job_id: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(client, "ListOTATaskByJob", JobId=job_id, **params)["Data"][
        "SimpleOTATaskInfo"
    ]
    return found
