"""Builds the ASGI application: every HTTP face of otahub on one port.

AWS requests (SigV4: an `AWS4-HMAC-SHA256` Authorization header or presigned
`X-Amz-*` query) and Alibaba RPC requests (`Action` with its signature parameters)
share the root path, as both clouds' clients expect; the router tells them apart
by their shape. Device downloads live under /dl, the CA under /ca.pem.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from otahub import __version__
from otahub.blobs.download import make_download_app
from otahub.runtime import Runtime


async def healthz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if not runtime.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


class FaceRouter:
    """Sends each request to the face whose protocol it speaks."""

    def __init__(self, runtime: Runtime, fallback: ASGIApp) -> None:
        self.runtime = runtime
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            face = self.face_for(scope)
            app = self.runtime.faces.get(face) if face else None
            if app is not None:
                await app(scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    @staticmethod
    def face_for(scope: Scope) -> str | None:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"")
        query = scope.get("query_string", b"")
        if (
            auth.startswith(b"AWS4-HMAC-SHA256")
            or b"X-Amz-Algorithm=" in query
            or (b"AWSAccessKeyId=" in query and b"Signature=" in query)  # S3 presigned v2
        ):
            return "aws"
        if b"Action=" in query or b"SignatureNonce=" in query:
            return "aliyun"
        path = scope.get("path", "")
        if path == "/oss" or path.startswith("/oss/"):
            return "aliyun-oss"  # the OSS-style upload form of GenerateOTAUploadURL
        if headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
            return "aliyun"  # RPC parameters in a form body
        return None


async def ca_pem(request: Request) -> Response:
    """The CA devices trust to reach the broker over TLS (it signs their certificates)."""
    runtime: Runtime = request.app.state.runtime
    if runtime.ca is None:
        return Response("no certificate authority\n", status_code=404)
    return Response(runtime.ca.pem, media_type="application/x-pem-file")


async def broker_auth(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    assert runtime.hooks is not None
    return await runtime.hooks.auth(request)


async def broker_acl(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    assert runtime.hooks is not None
    return await runtime.hooks.acl(request)


def build_app(runtime: Runtime) -> ASGIApp:
    inner = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/ca.pem", ca_pem),
            Route("/mqtt/auth", broker_auth, methods=["POST"]),
            Route("/mqtt/acl", broker_acl, methods=["POST"]),
            Mount(
                "/dl",
                app=make_download_app(runtime.blobs, runtime.downloads, redirect_to_store=True),
            ),
        ]
    )
    inner.state.runtime = runtime
    return FaceRouter(runtime, inner)


__all__ = ["FaceRouter", "build_app"]
