"""Builds the ASGI application: one port for every HTTP face."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otahub import __version__
from otahub.runtime import Runtime


async def healthz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if not runtime.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


def build_app(runtime: Runtime) -> Starlette:
    app = Starlette(routes=[Route("/healthz", healthz)])
    app.state.runtime = runtime
    return app
