"""An asyncio client for AWS JSON APIs (`iot`, `iot-jobs-data`) on httpx.

Requests are serialized, signed (SigV4) and parsed by botocore from its own service
models, exactly as boto3 would do it; only the transport differs, so that thousands
of simulated devices share one connection pool in one event loop instead of a
thread per blocking boto3 call."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import botocore.session
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

_models: dict[str, ServiceModel] = {}


def service_model(service: str) -> ServiceModel:
    if service not in _models:
        _models[service] = botocore.session.get_session().get_service_model(service)
    return _models[service]


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status


class AsyncAwsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        service: str,
        *,
        region: str,
        access_key: str,
        secret_key: str,
        attempts: int = 5,
    ) -> None:
        self.attempts = attempts
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.model = service_model(service)
        self.region = region
        self.credentials = Credentials(access_key, secret_key)
        protocol = self.model.metadata["protocol"]
        self._serializer = create_serializer(protocol, include_validation=True)
        self._parser = create_parser(protocol)

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One API call; throttling, server errors and broken connections are retried
        with jittered backoff, as botocore's standard retry mode does."""
        for attempt in range(self.attempts):
            try:
                return await self._call(operation, params)
            except AwsError as exc:
                if (exc.status < 500 and exc.status != 429) or attempt == self.attempts - 1:
                    raise
            except httpx.TransportError:
                if attempt == self.attempts - 1:
                    raise
            await asyncio.sleep(random.uniform(0, min(20.0, 0.5 * 2**attempt)))
        raise AssertionError("unreachable")

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        op = self.model.operation_model(operation)
        request_dict = self._serializer.serialize_to_request(params, op)
        prepare_request_dict(request_dict, endpoint_url=self.endpoint)
        request = AWSRequest(
            method=request_dict["method"],
            url=request_dict["url"],
            data=request_dict["body"],
            headers=request_dict["headers"],
        )
        SigV4Auth(self.credentials, self.model.signing_name, self.region).add_auth(request)
        prepared = request.prepare()
        response = await self.http.request(
            prepared.method,
            prepared.url,
            headers=dict(prepared.headers.items()),
            content=prepared.body or b"",
        )
        parsed: dict[str, Any] = self._parser.parse(
            {
                "status_code": response.status_code,
                "headers": dict(response.headers.items()),
                "body": response.content,
            },
            op.output_shape,
        )
        if response.status_code >= 300:
            error = parsed.get("Error", {})
            raise AwsError(
                str(error.get("Code") or response.status_code),
                str(error.get("Message", "")),
                response.status_code,
            )
        parsed.pop("ResponseMetadata", None)
        return parsed


class GatedTransport(httpx.AsyncBaseTransport):
    """Lets at most `limit` requests hold a connection; the rest wait here.

    httpcore's pool rescans every queued request against every connection on each
    change, which costs more than the requests themselves once thousands of devices
    queue at once; a semaphore in front keeps its queue empty."""

    def __init__(self, limit: int, **transport: Any) -> None:
        self.gate = asyncio.Semaphore(limit)
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            **transport,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.gate.acquire()
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            self.gate.release()
            raise
        response.stream = _ReleaseOnClose(response.stream, self.gate)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _ReleaseOnClose(httpx.AsyncByteStream):
    def __init__(self, stream: Any, gate: asyncio.Semaphore) -> None:
        self.stream = stream
        self.gate: asyncio.Semaphore | None = gate

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            if self.gate is not None:
                self.gate.release()
                self.gate = None


class StreamTransport(httpx.AsyncBaseTransport):
    """An httpx transport for many small requests to one plain-HTTP server: HTTP/1.1
    over at most `limit` keep-alive asyncio connections, bodies read whole by their
    Content-Length.

    httpcore checks every pooled connection (a socket poll each) and parses through
    several layers per request; for a fleet's thousands of Jobs calls a second that
    was the simulator's largest cost. Requests that fail on a connection raise
    httpx transport errors, so callers retry as before."""

    def __init__(self, limit: int, *, timeout: float = 60.0) -> None:
        self.gate = asyncio.Semaphore(limit)
        self.timeout = timeout
        self._idle: dict[
            tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        ] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol("StreamTransport speaks plain http only")
        host, port = url.host, url.port or 80
        body = await request.aread()
        lines = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1"]
        lines += [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in request.headers.raw]
        if body and "content-length" not in request.headers:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with self.gate:
            idle = self._idle.setdefault((host, port), [])
            conn = idle.pop() if idle else None
            try:
                async with asyncio.timeout(self.timeout):
                    if conn is None:
                        conn = await asyncio.open_connection(host, port, limit=1 << 20)
                    reader, writer = conn
                    writer.write(head + body)
                    raw = await reader.readuntil(b"\r\n\r\n")
                    status, headers, length, keep = _response_head(raw)
                    content = await reader.readexactly(length) if length else b""
            except TimeoutError as exc:
                if conn is not None:
                    conn[1].close()
                raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn[1].close()
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            if keep:
                idle.append(conn)
            else:
                conn[1].close()
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


def _response_head(raw: bytes) -> tuple[int, list[tuple[str, str]], int, bool]:
    """(status, headers, Content-Length, keep-alive) of a response head; ValueError
    for what this transport does not read (chunked bodies, no length)."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: list[tuple[str, str]] = []
    length: int | None = None
    keep = True
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        headers.append((name, value))
        lower = name.lower()
        if lower == "content-length":
            length = int(value)
        elif lower == "connection" and value.lower() == "close":
            keep = False
        elif lower == "transfer-encoding" and value.lower() != "identity":
            raise ValueError("chunked responses are not read here")
    if length is None:
        if status in (204, 304) or 100 <= status < 200:
            length = 0
        else:
            raise ValueError("no Content-Length")
    return status, headers, length, keep
