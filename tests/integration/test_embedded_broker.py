"""The embedded broker of `otahub serve`: device logins against the registry (AWS
mutual TLS, Alibaba device-secret HMAC), topic isolation, answers that reach a
requester without a subscription, and AWS's own device SDK over TLS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import cbor2
import httpx
import paho.mqtt.client as paho
import pytest

from otahub.core.services import Services
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from tests.integration.server import ServerProcess

KEY, SECRET = "AKIDEMBEDDED", "embedded-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("embedded"))
    proc = ServerProcess(
        data, env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET}
    ).start()
    yield proc
    proc.stop()
    # Refused connections and denied topics leave log lines, never a traceback.
    assert "Traceback" not in proc.output, proc.output[-3000:]


@pytest.fixture(scope="module")
def iot(server: ServerProcess) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def device_files(server: ServerProcess, iot: Any, thing: str, tmp: Path) -> dict[str, str]:
    iot.create_thing(thingName=thing)
    made = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    files = {"ca": tmp / "ca.pem", "cert": tmp / f"{thing}.pem", "key": tmp / f"{thing}.key"}
    files["ca"].write_text(httpx.get(f"{server.url}/ca.pem").text)
    files["cert"].write_text(made["certificatePem"])
    files["key"].write_text(made["keyPair"]["PrivateKey"])
    return {k: str(v) for k, v in files.items()}


def paho_client(client_id: str, **login: Any) -> tuple[paho.Client, queue.Queue[Any]]:
    inbox: queue.Queue[Any] = queue.Queue()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.on_message = lambda cl, ud, msg: inbox.put((msg.topic, msg.payload))
    c.on_connect = lambda cl, ud, flags, rc, props: inbox.put(("connack", rc))
    c.on_subscribe = lambda cl, ud, mid, rcs, props: inbox.put(("suback", rcs))
    if "username" in login:
        c.username_pw_set(login["username"], login.get("password"))
    if "tls" in login:
        c.tls_set(**login["tls"])
    return c, inbox


def expect(inbox: queue.Queue[Any], kind: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = inbox.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if got[0] == kind or (kind.startswith("$") and got[0] == kind):
            return got[1]
    raise AssertionError(f"no {kind}")


def test_aws_device_over_mutual_tls(server: ServerProcess, iot: Any, tmp_path: Path) -> None:
    thing = f"emb-{uuid.uuid4().hex[:6]}"
    f = device_files(server, iot, thing, tmp_path)
    c, inbox = paho_client(
        thing, tls={"ca_certs": f["ca"], "certfile": f["cert"], "keyfile": f["key"]}
    )
    c.connect("127.0.0.1", server.mqtts_port)
    c.loop_start()
    try:
        assert expect(inbox, "connack").value == 0
        base = f"$aws/things/{thing}/jobs/"
        # No subscription: AWS answers the requester anyway, and otahub does too.
        c.publish(base + "get", json.dumps({"clientToken": "a"}), qos=1)
        assert json.loads(expect(inbox, base + "get/accepted"))["clientToken"] == "a"
        c.publish(base + "$next/get", json.dumps({"clientToken": "b"}), qos=1)
        assert json.loads(expect(inbox, base + "$next/get/accepted"))["clientToken"] == "b"
        c.subscribe("$aws/things/someone-else/jobs/notify-next", qos=1)
        assert expect(inbox, "suback")[0].is_failure
        c.subscribe("$aws/things/+/jobs/#", qos=1)
        assert expect(inbox, "suback")[0].is_failure
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.mark.parametrize("qos", [0, 1])
def test_stream_window_over_mutual_tls(
    server: ServerProcess, iot: Any, tmp_path: Path, qos: int
) -> None:
    """A window of blocks reaches the requester whole and in order, at the QoS of
    its request (QoS 0: written in one go), and a bad request its error."""
    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name="eu-west-1",
        aws_access_key_id=KEY, aws_secret_access_key=SECRET,
    )  # fmt: skip
    bucket, sid = f"emb-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    image = bytes(range(256)) * 16 * 40 + b"tail"  # 40 blocks of 4 KiB and a short one
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=image)
    iot.create_stream(
        streamId=sid, roleArn="arn:aws:iam::123456789012:role/ota",
        files=[{"fileId": 0, "s3Location": {"bucket": bucket, "key": "fw.bin"}}],
    )  # fmt: skip
    thing = f"emb-{uuid.uuid4().hex[:6]}"
    f = device_files(server, iot, thing, tmp_path)
    c, inbox = paho_client(
        thing, tls={"ca_certs": f["ca"], "certfile": f["cert"], "keyfile": f["key"]}
    )
    qos_seen: list[int] = []
    c.on_message = lambda cl, ud, msg: (
        qos_seen.append(msg.qos),
        inbox.put((msg.topic, msg.payload)),
    )
    c.connect("127.0.0.1", server.mqtts_port)
    c.loop_start()
    try:
        assert expect(inbox, "connack").value == 0
        base = f"$aws/things/{thing}/streams/{sid}/"
        for offset in (0, 32):  # the second window is the file's last 9 blocks
            request = {"c": "rdy", "f": 0, "l": 4096, "o": offset, "n": 32}
            c.publish(base + "get/cbor", cbor2.dumps(request), qos=qos)
            wanted = list(range(offset, min(offset + 32, 41)))
            got = [cbor2.loads(expect(inbox, base + "data/cbor")) for _ in wanted]
            assert [b["i"] for b in got] == wanted
            assert [b["p"] for b in got] == [image[i * 4096 : (i + 1) * 4096] for i in wanted]
        assert set(qos_seen) == {qos}
        c.publish(base + "get/cbor", cbor2.dumps({"c": "x", "f": 0, "l": 1}), qos=qos)
        error = cbor2.loads(expect(inbox, base + "rejected/cbor"))
        assert error["o"] == "BlockSizeOutOfBounds" and error["c"] == "x"
    finally:
        c.loop_stop()
        c.disconnect()


def test_refusals(server: ServerProcess, iot: Any, tmp_path: Path) -> None:
    thing = f"ref-{uuid.uuid4().hex[:6]}"
    f = device_files(server, iot, thing, tmp_path)
    plain, inbox = paho_client(thing)
    plain.connect("127.0.0.1", server.mqtt_port)
    plain.loop_start()
    assert expect(inbox, "connack").is_failure  # no certificate, no identity
    plain.loop_stop()
    nocert, inbox2 = paho_client(thing, tls={"ca_certs": f["ca"]})
    nocert.connect("127.0.0.1", server.mqtts_port)
    nocert.loop_start()
    assert expect(inbox2, "connack").is_failure
    nocert.loop_stop()


async def aliyun_device(server: ServerProcess, pk: str, dn: str, secret: str) -> None:
    db = Database(f"sqlite:///{server.data_dir / 'otahub.db'}")
    try:
        svc = Services.build(db, SystemClock())
        creds = json.loads((server.data_dir / "credentials.json").read_text())
        tenant = await svc.accounts.tenant(creds["account_id"])
        await svc.registry.create_product(tenant.id, pk, f"p{pk}")
        await svc.registry.create_device(tenant.id, dn, product_key=pk, secret=secret)
    finally:
        await db.dispose()


def linkkit_login(pk: str, dn: str, secret: str) -> tuple[str, str, str]:
    ts = str(int(time.time()))
    client_id = f"{pk}&{dn}|securemode=3,signmethod=hmacsha1,timestamp={ts}|"
    text = f"clientId{pk}&{dn}deviceName{dn}productKey{pk}timestamp{ts}"
    password = hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()
    return client_id, f"{dn}&{pk}", password


def test_alibaba_device_secret_login(server: ServerProcess) -> None:
    pk, dn, secret = f"a1{uuid.uuid4().hex[:9]}", "dev1", "s3cret-device"
    asyncio.run(aliyun_device(server, pk, dn, secret))
    client_id, user, password = linkkit_login(pk, dn, secret)
    ok, inbox = paho_client(client_id, username=user, password=password)
    ok.connect("127.0.0.1", server.mqtt_port)
    ok.loop_start()
    try:
        assert expect(inbox, "connack").value == 0
        ok.subscribe(f"/ota/device/upgrade/{pk}/{dn}", qos=1)
        assert not expect(inbox, "suback")[0].is_failure
        ok.subscribe(f"/ota/device/upgrade/{pk}/other", qos=1)
        assert expect(inbox, "suback")[0].is_failure
    finally:
        ok.loop_stop()
        ok.disconnect()
    bad_id, user, _ = linkkit_login(pk, dn, secret)
    wrong, inbox = paho_client(bad_id, username=user, password="0" * 40)
    wrong.connect("127.0.0.1", server.mqtt_port)
    wrong.loop_start()
    assert expect(inbox, "connack").is_failure
    wrong.loop_stop()


def test_awsiotsdk_over_mutual_tls(server: ServerProcess, iot: Any, tmp_path: Path) -> None:
    from awscrt import mqtt_request_response
    from awsiot import iotjobs, mqtt_connection_builder

    thing = f"sdk-{uuid.uuid4().hex[:6]}"
    f = device_files(server, iot, thing, tmp_path)
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1",
        port=server.mqtts_port,
        cert_filepath=f["cert"],
        pri_key_filepath=f["key"],
        ca_filepath=f["ca"],
        client_id=thing,
        clean_session=True,
        keep_alive_secs=30,
        enable_metrics_collection=False,
    )
    conn.connect().result(10)
    try:
        jobs = iotjobs.IotJobsClientV2(
            conn,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=2,
                operation_timeout_in_seconds=10,
            ),
        )
        arn = iot.describe_thing(thingName=thing)["thingArn"]
        iot.create_job(jobId=f"j-{thing}", targets=[arn], document='{"go": 1}')
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pending = jobs.get_pending_job_executions(
                iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
            ).result(10)
            if pending.queued_jobs:
                break
            time.sleep(0.3)
        assert [j.job_id for j in pending.queued_jobs] == [f"j-{thing}"]
        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
        ).result(10)
        assert started.execution.job_document == {"go": 1}
    finally:
        conn.disconnect().result(10)
    assert ssl  # the TLS stack the listener uses is the standard one


def test_http_hooks_for_external_brokers(server: ServerProcess, iot: Any, tmp_path: Path) -> None:
    pk, dn, secret = f"a1{uuid.uuid4().hex[:9]}", "hookdev", "hook-secret"
    asyncio.run(aliyun_device(server, pk, dn, secret))
    client_id, user, password = linkkit_login(pk, dn, secret)

    def post(path: str, body: dict[str, Any]) -> str:
        out: str = httpx.post(f"{server.url}{path}", json=body).json()["result"]
        return out

    login = {"clientid": client_id, "username": user}
    assert post("/mqtt/auth", {**login, "password": password}) == "allow"
    assert post("/mqtt/auth", {**login, "password": "0" * 40}) == "deny"
    assert (
        post("/mqtt/acl", {**login, "topic": f"/ota/device/inform/{pk}/{dn}", "action": "publish"})
        == "allow"
    )
    assert (
        post("/mqtt/acl", {**login, "topic": f"/ota/device/inform/{pk}/x", "action": "publish"})
        == "deny"
    )
    thing = f"hk-{uuid.uuid4().hex[:6]}"
    f = device_files(server, iot, thing, tmp_path)
    cert = Path(f["cert"]).read_text()
    assert post("/mqtt/auth", {"clientid": thing, "cert_pem": cert}) == "allow"
    assert post("/mqtt/auth", {"clientid": thing}) == "deny"
    assert (
        post(
            "/mqtt/acl",
            {"clientid": thing, "topic": f"$aws/things/{thing}/jobs/get", "action": "publish"},
        )
        == "allow"
    )
    assert (
        post(
            "/mqtt/acl",
            {"clientid": thing, "topic": "$aws/things/other/jobs/get", "action": "publish"},
        )
        == "deny"
    )
