"""Sign requests with the real aliyun-python-sdk-core, offline, and a throwaway local
server that runs the protocol layer behind the real SDK client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aliyunsdkcore.client import AcsClient

from otahub.aliyun.protocol.envelope import RpcResponse, error_response, success
from otahub.aliyun.protocol.errors import AliyunError
from otahub.aliyun.protocol.frontdoor import Received, action_of, format_of, receive
from otahub.aliyun.protocol.nonces import MemoryNonceStore
from otahub.aliyun.protocol.signature import Authenticator
from otahub.domain.clock import FakeClock

AK, SECRET = "AK", "SECRET"
NO_PROXY = {"http": None, "https": None}


def client(ak: str = AK, secret: str = SECRET) -> AcsClient:
    return AcsClient(ak, secret, "cn-shanghai", proxy=NO_PROXY)


@dataclass(frozen=True)
class Signed:
    method: str
    query: str
    body: bytes
    content_type: str | None
    string_to_sign: str


def sign_offline(request: Any, *, ak: str = AK, secret: str = SECRET, fmt: str = "JSON") -> Signed:
    """The SDK's own signing path (`_make_http_response`), without sending."""
    request.set_accept_format(fmt)
    response = client(ak, secret)._make_http_response("127.0.0.1", request, 10, 5)
    url: str = response.get_url()
    content = response.get_content() or b""
    body = content.encode() if isinstance(content, str) else content
    return Signed(
        method=response.get_method(),
        query=url.split("?", 1)[1],
        body=body,
        content_type=response.get_headers().get("Content-Type"),
        string_to_sign=request.string_to_sign,
    )


def real_now_clock() -> FakeClock:
    """The SDK stamps requests with the real time."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def authenticator(clock: FakeClock, secrets: dict[str, str] | None = None) -> Authenticator:
    table = {AK: SECRET} if secrets is None else secrets
    return Authenticator(lookup_secret=table.get, clock=clock, nonces=MemoryNonceStore(clock))


Handler = Callable[[Received], RpcResponse]


def echo_handler(received: Received) -> RpcResponse:
    call = received.call
    return success(call.action, {"Data": {"Params": call.params}}, fmt=call.format)


async def handle(
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    auth: Authenticator,
    handler: Handler,
) -> RpcResponse:
    query = path.split("?", 1)[1] if "?" in path else ""
    try:
        received = await receive(method, query, body, content_type, authenticator=auth)
        return handler(received)
    except AliyunError as error:
        fmt = format_of(query, body, content_type)
        return error_response(error, action_of(query, body, content_type), fmt=fmt)


def _bind(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for port in range(18300, 18400):
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError("no free port in 18300-18399")


@contextmanager
def serve(auth: Authenticator, handler: Handler = echo_handler) -> Iterator[str]:
    """Yields the endpoint `127.0.0.1:<port>` of a server running the protocol layer."""

    class Rpc(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            response = asyncio.run(
                handle(
                    self.command, self.path, body, self.headers.get("Content-Type"), auth, handler
                )
            )
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _bind(Rpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
