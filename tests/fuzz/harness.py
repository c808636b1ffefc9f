"""The fuzz suite's harness: a whole otahub server in process (the runtime and ASGI app
that `otahub serve` builds, on a fake clock, its engine ticked by hand), signed clients
for both clouds, a watch on the server's log, and the campaign that sends each input
and judges the answer.

An input fails the suite when it gets a 5xx (other than one its model declares), a
traceback in the server's log, no answer within HANG_S, or a 2xx where the case knows
it must be refused; and a refused input fails it when the store changed under it.
After each surface's batch the server must still answer /healthz and still release a
fresh job to a device."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import unittest.mock
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.auth
import httpx
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import text

from otahub.aliyun.protocol.signature import sign, string_to_sign
from otahub.app import build_app
from otahub.config import Settings
from otahub.domain.clock import FakeClock
from otahub.domain.entities import Device
from otahub.runtime import Runtime
from otahub.store.tables import metadata

KEY, SECRET = "AKIDOTAHUBFUZZ", "otahub-fuzz-secret"
REGION = "us-east-1"
HOST = "otahub.test"
BASE = f"http://{HOST}"
HANG_S = float(os.environ.get("OTAHUB_FUZZ_HANG_S", "5"))
SHOWN = 160  # characters of an offending input shown in a report
SURFACES = (
    "AWS iot",
    "AWS iot-jobs-data",
    "AWS signer",
    "AWS s3",
    "Alibaba RPC",
    "OSS form",
    "auth",
    "MQTT AWS jobs",
    "MQTT streams",
    "MQTT Alibaba",
)
# Internal-failure codes: a 5xx with one of these is a crash even where a model lists it.
INTERNAL_CODES = frozenset(
    {"InternalFailureException", "InternalException", "InternalServerException", "InternalError"}
)


def examples_per_case(default: int) -> int:
    """OTAHUB_FUZZ_EXAMPLES raises (or, for a quick run, lowers) every surface's count."""
    given = os.environ.get("OTAHUB_FUZZ_EXAMPLES")
    return max(1, int(given)) if given else default


def short(value: Any, limit: int = SHOWN) -> str:
    shown = value if isinstance(value, str) else repr(value)
    return shown if len(shown) <= limit else f"{shown[: limit - 12]}…({len(shown)} ch)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- totals -------------------------------------------------------------------------


@dataclass
class Tally:
    """One surface on one database."""

    sent: int = 0
    server_errors: int = 0
    tracebacks: int = 0
    hangs: int = 0
    wrongful: int = 0
    stored: int = 0  # a refused input that changed the store
    after: str = ""  # what the post-batch checks found ("" while they pass)
    offenders: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # status and error code: coverage

    @property
    def failures(self) -> int:
        return self.server_errors + self.tracebacks + self.hangs + self.wrongful + self.stored

    def note(self, problem: str, where: str, detail: str) -> None:
        self.offenders.append(f"{problem}: {short(where, 200)} -> {short(detail, 260)}")


class Totals:
    """Every tally of the session, for the closing table."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], Tally] = {}

    def tally(self, surface: str, database: str) -> Tally:
        assert surface in SURFACES, surface
        return self.tallies.setdefault((surface, database), Tally())

    def table(self) -> list[str]:
        head = f"{'surface':<20} {'db':<9} {'inputs':>6} {'5xx':>5} {'trace':>5} "
        head += f"{'hangs':>5} {'wrong':>5} {'stored':>6}  after"
        lines = [head, "-" * len(head)]
        for surface in SURFACES:
            for (s, database), t in sorted(self.tallies.items()):
                if s != surface:
                    continue
                lines.append(
                    f"{s:<20} {database:<9} {t.sent:>6} {t.server_errors:>5} {t.tracebacks:>5} "
                    f"{t.hangs:>5} {t.wrongful:>5} {t.stored:>6}  {t.after or 'ok'}"
                )
        return lines


TOTALS = Totals()


# -- the server's log ------------------------------------------------------------------


class LogWatch(logging.Handler):
    """Keeps every record that carries a traceback, from any logger in the process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info or record.exc_text or "Traceback (most recent call last)" in message:
            last = ""
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                place = _deepest_otahub_frame(exc)
                last = f" {type(exc).__name__}: {short(str(exc), 90)}{place}"
            self.found.append(f"[{record.name}] {short(message, 80)}{last}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


def _deepest_otahub_frame(exc: BaseException) -> str:
    """` at file:line` of the innermost frame in otahub's own code, where it went wrong."""
    place = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "/otahub/" in name:
            place = f" at {name.split('/otahub/', 1)[1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return place


@contextmanager
def watching_logs() -> Iterator[LogWatch]:
    watch = LogWatch()
    root = logging.getLogger()
    level = root.level
    root.addHandler(watch)
    root.setLevel(min(level, logging.WARNING) if level else logging.WARNING)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        root.setLevel(level)


# -- the server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request as it goes on the wire: `target` is the raw path and query."""

    method: str
    target: str
    headers: Mapping[str, str | bytes]
    body: bytes = b""

    def describe(self) -> str:
        return f"{self.method} {self.target} {self.body[:200]!r}"


class Server:
    """otahub's runtime in process on one database, with signed clients."""

    def __init__(self, runtime: Runtime, clock: FakeClock, database: str) -> None:
        self.runtime = runtime
        self.clock = clock
        self.database = database
        self.app = build_app(runtime)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE, timeout=None
        )

    @classmethod
    async def start(cls, db_url: str, data_dir: Path) -> Server:
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        settings = Settings(
            data_dir=data_dir,
            database_url=db_url,
            access_key_id=KEY,
            secret_access_key=SECRET,
            mqtt_port=free_port(),
            mqtts_port=free_port(),
            engine_interval=86_400.0,  # ticks once at start; the suite ticks it by hand
            aliyun_rate_limits="off",
        )
        runtime = Runtime(settings, clock)
        await runtime.start()
        return cls(runtime, clock, "postgres" if db_url.startswith("postgres") else "sqlite")

    async def stop(self) -> None:
        await self.http.aclose()
        await self.runtime.stop()

    @property
    def account_id(self) -> str:
        assert self.runtime.credentials is not None
        return self.runtime.credentials.account_id

    async def tenant_id(self) -> int:
        return (await self.runtime.services.accounts.tenant(self.account_id)).id

    # -- sending ------------------------------------------------------------------------

    async def send(self, request: RawRequest) -> Answer:
        """One request through the ASGI app; TimeoutError past HANG_S."""
        req = self.http.build_request(
            request.method,
            httpx.URL(BASE + request.target),
            headers=list(_header_items(request.headers)),
            content=request.body,
        )
        response = await asyncio.wait_for(self.http.send(req), HANG_S)
        return Answer(response.status_code, dict(response.headers), response.content)

    def aws_signed(
        self,
        service: str,
        request: RawRequest,
        *,
        s3: bool = False,
        at: datetime | None = None,
        secret: str = SECRET,
        key: str = KEY,
    ) -> RawRequest:
        """The request signed with SigV4 as botocore signs it, at the fake clock's time."""
        headers = {k: v for k, v in request.headers.items() if isinstance(v, str)}
        aws = AWSRequest(
            method=request.method, url=BASE + request.target, data=request.body, headers=headers
        )
        signer_class = S3SigV4Auth if s3 else SigV4Auth
        now = (at or self.clock.now()).replace(tzinfo=None)  # botocore's clock is naive UTC
        with unittest.mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
            signer_class(Credentials(key, secret), service, REGION).add_auth(aws)
        signed = {**request.headers, **dict(aws.headers.items())}
        return RawRequest(request.method, request.target, signed, request.body)

    def aliyun_target(self, params: Mapping[str, str], method: str = "POST") -> str:
        """`/?query` of an RPC call signed with signature V1 (HMAC-SHA1), as the SDK signs."""
        common = {
            "Format": "JSON",
            "Version": "2018-01-20",
            "AccessKeyId": KEY,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureType": "",
            "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RegionId": "cn-shanghai",
        }
        # The action and its parameters first, so that a report shows them; they may
        # also replace a common parameter (a hostile Timestamp, signed).
        query = {**params, **{k: v for k, v in common.items() if k not in params}}
        try:
            query["Signature"] = sign(string_to_sign(method, query), SECRET)
        except UnicodeEncodeError:
            query["Signature"] = "unsignable"  # lone surrogates: no UTF-8 to sign
        return "/?" + "&".join(f"{pct(k)}={pct(v)}" for k, v in query.items())

    async def aws_call(self, service: str, method: str, path: str, body: Any = None) -> Answer:
        """A well-formed signed call, for setup and the after-batch checks."""
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json"} if body is not None else {}
        return await self.send(self.aws_signed(service, RawRequest(method, path, headers, raw)))

    async def aliyun_call(self, action: str, **params: str) -> dict[str, Any]:
        answer = await self.send(
            RawRequest("POST", self.aliyun_target({"Action": action, **params}), {})
        )
        body = answer.json()
        return body if isinstance(body, dict) else {"status": answer.status, "text": answer.text}

    # -- what the store holds ---------------------------------------------------------------

    async def footprint(self) -> tuple[int, ...]:
        """Row counts of every table (one statement) and the number of blob files."""
        names = [t.name for t in metadata.sorted_tables]
        counts = ", ".join(f"(SELECT count(*) FROM {n})" for n in names)
        async with self.runtime.db.read() as conn:
            row = (await conn.execute(text(f"SELECT {counts}"))).one()
        blobs = Path(self.runtime.settings.data_dir) / "blobs"
        files = sum(len(f) for _, _, f in os.walk(blobs))
        return (*row, files)

    def footprint_change(self, before: tuple[int, ...], after: tuple[int, ...]) -> str:
        names = [*(t.name for t in metadata.sorted_tables), "blob files"]
        changed = [f"{n} {a}->{b}" for n, a, b in zip(names, before, after, strict=True) if a != b]
        return ", ".join(changed)

    # -- devices ------------------------------------------------------------------------------

    async def thing(self, name: str) -> Device:
        found = await self.runtime.services.registry.find_device(await self.tenant_id(), name)
        assert found is not None, name
        return found


def pct(value: str) -> str:
    """Percent-encoding of any string, lone surrogates included (as WTF-8 bytes)."""
    return urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="-_.~")


def _header_items(headers: Mapping[str, str | bytes]) -> Iterator[tuple[bytes, bytes]]:
    for name, value in headers.items():
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        yield name.encode(), raw


# -- a campaign: one surface's batch on one server ---------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the case knows of an input: whether it must be refused, and why."""

    refuse: str | None = None  # the reason it must be refused; None: either answer is fine
    allowed_5xx: frozenset[str] = frozenset()  # error codes the operation's model declares


class Campaign:
    """Sends one surface's inputs, judges each answer and keeps the tally."""

    def __init__(self, server: Server, surface: str, watch: LogWatch) -> None:
        self.server = server
        self.surface = surface
        self.watch = watch
        self.tally = TOTALS.tally(surface, server.database)
        self._footprint: tuple[int, ...] | None = None
        self.fresh = 0  # names made so far for resources that must not exist yet
        watch.take()  # what setup logged is not this surface's

    async def http(self, request: RawRequest, verdict: Verdict = Verdict()) -> Answer | None:
        where = request.describe()
        before = await self._before()
        started = time.monotonic()
        try:
            answer: Answer | None = await self.server.send(request)
        except TimeoutError:
            answer = None
        except Exception as exc:  # the in-process server raised out of the ASGI app
            self._judge_crash(where, exc)
            answer = None
        elapsed = time.monotonic() - started
        self.tally.sent += 1
        self._judge_time(where, answer is None and elapsed >= HANG_S, elapsed)
        self._judge_log(where)
        if answer is None:
            self._footprint = None
            return None
        code = error_code(answer)
        self.tally.answers[f"{answer.status} {code}".strip()] += 1
        if answer.status >= 500 and (code in INTERNAL_CODES or code not in verdict.allowed_5xx):
            self.tally.server_errors += 1
            self.tally.note(f"{answer.status} {code}", where, answer.text)
        refused = answer.status >= 400 or refused_in_body(answer)
        if verdict.refuse and not refused:
            self.tally.wrongful += 1
            self.tally.note("accepted", where, f"{answer.status}, must refuse: {verdict.refuse}")
        await self._after(where, before, refused)
        return answer

    async def device(
        self,
        device: Device,
        topic: str,
        payload: bytes,
        must_refuse: str | None = None,
        accepts: Callable[[Any], bool] = lambda m: "rejected" not in m.topic.split("/"),
    ) -> list[Any]:
        """One MQTT publish from `device`, through the device bridge as the broker feeds it."""
        where = f"{topic} {payload[:200]!r}"
        before = await self._before()
        started = time.monotonic()
        bridge = self.server.runtime.bridge
        assert bridge is not None
        out: list[Any] = []
        hung = False
        try:
            out = await asyncio.wait_for(bridge.on_message(device, topic, payload), HANG_S)
        except TimeoutError:
            hung = True
        except Exception as exc:
            self._judge_crash(where, exc)
        elapsed = time.monotonic() - started
        self.tally.sent += 1
        self._judge_time(where, hung, elapsed)
        self._judge_log(where)
        accepted = [m for m in out if accepts(m)]
        self.tally.answers[out[0].topic.rsplit("/", 1)[-1] if out else "no reply"] += 1
        if must_refuse and accepted:
            self.tally.wrongful += 1
            self.tally.note("accepted", where, f"{accepted[0].topic}, must refuse: {must_refuse}")
        refused = must_refuse is not None or (bool(out) and not accepted)
        await self._after(where, before, refused)
        return out

    def count_hang(self, where: str, detail: str) -> None:
        self.tally.hangs += 1
        self.tally.note("hang", where, detail)

    def _judge_crash(self, where: str, exc: BaseException) -> None:
        self.tally.tracebacks += 1
        self.tally.note("raised", where, f"{type(exc).__name__}: {exc}")

    def _judge_time(self, where: str, hung: bool, elapsed: float) -> None:
        if hung or elapsed >= HANG_S:
            self.count_hang(where, f"no answer within {HANG_S:.0f} s ({elapsed:.1f} s)")

    def _judge_log(self, where: str) -> None:
        for line in self.watch.take():
            self.tally.tracebacks += 1
            self.tally.note("traceback", where, line)

    async def _before(self) -> tuple[int, ...]:
        if self._footprint is None:
            self._footprint = await self.server.footprint()
        return self._footprint

    async def _after(self, where: str, before: tuple[int, ...], refused: bool) -> None:
        """A refused input must leave the store as it was; an accepted one may change it."""
        if not refused:
            self._footprint = None
            return
        after = await self.server.footprint()
        self._footprint = after
        changed = self.server.footprint_change(before, after)
        if changed:
            self.tally.stored += 1
            self.tally.note("refused but stored", where, changed)

    async def check_still_serving(self) -> None:
        """After the batch: healthy, and a fresh job still reaches its device."""
        problems = await still_serving(self.server)
        self._footprint = None  # the canary thing and job are in the store now
        self._judge_log("after the batch")
        if problems:
            self.tally.after = short("; ".join(problems), 60)
            self.tally.offenders.append(f"after the batch: {'; '.join(problems)}")

    def report(self) -> str:
        t = self.tally
        lines = [
            f"{self.surface} on {self.server.database}: {t.sent} inputs, {t.server_errors} 5xx, "
            f"{t.tracebacks} tracebacks, {t.hangs} hangs, {t.wrongful} wrongful acceptances, "
            f"{t.stored} refused but stored; after: {t.after or 'ok'}"
        ]
        lines += [f"  {line}" for line in dedupe(t.offenders)]
        return "\n".join(lines)

    @property
    def failed(self) -> bool:
        return bool(self.tally.failures or self.tally.after)


def dedupe(lines: Sequence[str], limit: int = 60) -> list[str]:
    """The offenders, one per distinct problem line start, at most `limit`."""
    seen: dict[str, int] = {}
    for line in lines:
        key = line.split("->", 1)[-1][:90]
        seen[key] = seen.get(key, 0) + 1
    shown, out = set(), []
    for line in lines:
        key = line.split("->", 1)[-1][:90]
        if key in shown:
            continue
        shown.add(key)
        more = f"  (x{seen[key]})" if seen[key] > 1 else ""
        out.append(line + more)
    return out[:limit]


def error_code(answer: Answer) -> str:
    """The error code of an AWS, S3, Alibaba or OSS error answer, when it has one."""
    code = answer.headers.get("x-amzn-errortype", "")
    if code:
        return code.split(":", 1)[0]
    body = answer.json()
    if isinstance(body, dict):
        return str(body.get("__type") or body.get("Code") or "")
    start = answer.body.find(b"<Code>")
    if start >= 0:
        end = answer.body.find(b"</Code>", start)
        return answer.body[start + 6 : end].decode(errors="replace")
    return ""


def refused_in_body(answer: Answer) -> bool:
    """Alibaba answers business errors with 200 and `Success: false`."""
    body = answer.json()
    return isinstance(body, dict) and (body.get("Success") is False or "Code" in body)


# -- the after-batch checks -------------------------------------------------------------------


async def still_serving(server: Server) -> list[str]:
    problems: list[str] = []
    health = await server.send(RawRequest("GET", "/healthz", {}))
    if health.status != 200:
        problems.append(f"/healthz {health.status}")
    name = f"canary-{uuid.uuid4().hex[:8]}"
    made = await server.aws_call("iot", "POST", f"/things/{name}", {})
    if made.status != 200:
        return [*problems, f"CreateThing {made.status} {short(made.text, 80)}"]
    arn = made.json()["thingArn"]
    job = await server.aws_call(
        "iot", "PUT", f"/jobs/{name}", {"targets": [arn], "document": '{"operation":"canary"}'}
    )
    if job.status != 200:
        return [*problems, f"CreateJob {job.status} {short(job.text, 80)}"]
    try:
        await server.runtime.engine.tick()
    except Exception as exc:
        problems.append(f"engine tick raised {type(exc).__name__}: {short(str(exc), 80)}")
    execution = await server.aws_call("iot", "GET", f"/things/{name}/jobs/{name}")
    status = (execution.json() or {}).get("execution", {}).get("status")
    if status != "QUEUED":
        problems.append(f"fresh job not released (execution {status or execution.status})")
    bridge = server.runtime.bridge
    assert bridge is not None
    thing = await server.thing(name)
    replies = await bridge.on_message(thing, f"$aws/things/{name}/jobs/get", b"{}")
    queued = [j.get("jobId") for r in replies for j in json.loads(r.payload).get("queuedJobs", [])]
    if name not in queued:
        problems.append("the device is not offered the fresh job")
    return problems


# -- the world every campaign starts from -----------------------------------------------------


PLATFORM = "AmazonFreeRTOS-Default"


def multipart(fields: Mapping[str, str], content: bytes, boundary: str = "fuzzboundary") -> bytes:
    """A multipart/form-data body: `fields`, then the `file` part."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode(
            "utf-8", "surrogatepass"
        )
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts)


def form_headers(boundary: str = "fuzzboundary") -> dict[str, str | bytes]:
    return {"content-type": f"multipart/form-data; boundary={boundary}"}


async def upload_form(server: Server) -> dict[str, str]:
    """The fields of a fresh OSS upload form (GenerateOTAUploadURL)."""
    data = (await server.aliyun_call("GenerateOTAUploadURL"))["Data"]
    return {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["OSSAccessKeyId"],
        "signature": data["Signature"],
        "success_action_status": "200",
        "_url": data["FirmwareUrl"],
    }


async def seed_world(server: Server) -> dict[str, str]:
    """Things, a group, a released job, a bucket and object, a stream, a signing profile;
    an Alibaba product, devices, firmware and a job: so that generated inputs that name
    them reach deep into the handlers. Returns the `@NAME@` placeholders' values."""
    failures: list[str] = []

    async def aws(service: str, method: str, path: str, body: Any = None) -> Any:
        answer = await server.aws_call(service, method, path, body)
        if answer.status >= 300:
            failures.append(f"{method} {path}: {answer.status} {short(answer.text, 100)}")
        return answer.json() or {}

    thing = await aws("iot", "POST", "/things/fz-thing", {})
    group = await aws("iot", "POST", "/thing-groups/fz-group", {})
    await aws(
        "iot",
        "PUT",
        "/thing-groups/addThingToThingGroup",
        {"thingGroupName": "fz-group", "thingName": "fz-thing"},
    )
    await aws("iot", "PUT", "/jobs/fz-job", {"targets": [thing.get("thingArn")], "document": "{}"})
    put = RawRequest("PUT", "/fz-bucket", {})
    await server.send(server.aws_signed("s3", put, s3=True))
    obj = RawRequest("PUT", "/fz-bucket/fw.bin", {}, b"firmware" * 64)
    await server.send(server.aws_signed("s3", obj, s3=True))
    await aws(
        "iot",
        "POST",
        "/streams/fz-stream",
        {
            "files": [{"fileId": 0, "s3Location": {"bucket": "fz-bucket", "key": "fw.bin"}}],
            "roleArn": f"arn:aws:iam::{server.account_id}:role/fz",
        },
    )
    await aws("signer", "PUT", "/signing-profiles/fzprofile", {"platformId": PLATFORM})

    product = await server.aliyun_call("CreateProduct", ProductName="fzproduct", NodeType="0")
    pk = str(product.get("ProductKey", "nopk"))
    device = await server.aliyun_call("RegisterDevice", ProductKey=pk, DeviceName="fzdevice01")
    await server.aliyun_call("RegisterDevice", ProductKey=pk, DeviceName="fzdevice02")
    form = await upload_form(server)
    url = form.pop("_url")
    body = multipart(form, b"image" * 100)
    await server.send(RawRequest("POST", "/oss", form_headers(), body))
    firmware = await server.aliyun_call(
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName="fzfw",
        DestVersion="2.0.0",
        FirmwareUrl=url,
        NeedToVerify="false",
    )
    fid = (firmware.get("Data") or {}).get("FirmwareId", "nofid")
    job = await server.aliyun_call(
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="SPECIFIC",
        **{"TargetDeviceName.1": "fzdevice01"},
    )
    await server.runtime.engine.tick()
    failures += [
        f"{name}: {short(answer, 100)}"
        for name, answer in (("product", product), ("firmware", firmware), ("job", job))
        if not answer.get("Success")
    ]
    if failures:
        raise AssertionError("the world could not be set up: " + "; ".join(failures))
    return {
        "@ACCOUNT@": server.account_id,
        "@THINGARN@": str(thing.get("thingArn", "")),
        "@GROUPARN@": str(group.get("thingGroupArn", "")),
        "@PK@": str(pk),
        "@FID@": str(fid),
        "@JOBID@": str((job.get("Data") or {}).get("JobId", "nojob")),
        "@IOTID@": str((device.get("Data") or {}).get("IotId", "noiotid")),
    }
