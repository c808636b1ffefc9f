"""botocore's service models, and routing a request to one of their operations."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

import botocore.loaders
import botocore.model

SERVICES = ("iot", "iot-jobs-data", "signer")


@functools.cache
def service_model(service: str) -> botocore.model.ServiceModel:
    loader = botocore.loaders.Loader()
    return botocore.model.ServiceModel(loader.load_service_model(service, "service-2"), service)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    literal_chars: int
    operation: str
    model: botocore.model.OperationModel


@dataclass(frozen=True)
class Match:
    operation: botocore.model.OperationModel
    labels: dict[str, str]


def _compile(template: str) -> tuple[re.Pattern[str], int]:
    path = template.split("?", 1)[0]
    out, literal, pos = [], 0, 0
    for m in re.finditer(r"\{([^}]+)\}", path):
        out.append(re.escape(path[pos : m.start()]))
        literal += m.start() - pos
        name = m.group(1)
        if name.endswith("+"):
            out.append(f"(?P<{name[:-1]}>.+)")
        else:
            out.append(f"(?P<{name}>[^/]+)")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    literal += len(path) - pos
    return re.compile("^" + "".join(out) + "/?$"), literal


@functools.cache
def routes(service: str) -> tuple[Route, ...]:
    model = service_model(service)
    found = []
    for name in model.operation_names:
        op = model.operation_model(name)
        pattern, literal = _compile(op.http["requestUri"])
        found.append(Route(op.http["method"], pattern, literal, name, op))
    # More literal text wins: `/jobs/$next` before `/jobs/{jobId}`.
    return tuple(sorted(found, key=lambda r: -r.literal_chars))


def _first_segment(template: str) -> str | None:
    """The first path segment of a requestUri when it is literal text, else None."""
    first = template.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    return None if "{" in first else first


class Router:
    """`routes(service)` indexed by method and first path segment: a request is
    matched only against the routes it could match, in the same order."""

    def __init__(self, service: str) -> None:
        self.service = service
        by_key: dict[tuple[str, str | None], list[tuple[int, Route]]] = {}
        for i, r in enumerate(routes(service)):
            first = _first_segment(r.model.http["requestUri"])
            by_key.setdefault((r.method, first), []).append((i, r))
        wild = {m: by_key.get((m, None), []) for m, _ in by_key}
        self._any_first: dict[str, tuple[Route, ...]] = {
            m: tuple(r for _, r in rs) for m, rs in wild.items()
        }
        self._by_first: dict[tuple[str, str], tuple[Route, ...]] = {
            (m, first): tuple(r for _, r in sorted(rs + wild[m], key=lambda x: x[0]))
            for (m, first), rs in by_key.items()
            if first is not None
        }

    def candidates(self, method: str, raw_path: str) -> tuple[Route, ...]:
        first = raw_path.lstrip("/").split("/", 1)[0]
        found = self._by_first.get((method, first))
        return found if found is not None else self._any_first.get(method, ())


@functools.cache
def router(service: str) -> Router:
    return Router(service)


def route(service: str, method: str, raw_path: str) -> Match | None:
    """The operation for a request, matched on the raw path; labels come decoded."""
    for r in router(service).candidates(method, raw_path):
        m = r.pattern.match(raw_path)
        if m is not None:
            labels = {k: unquote(v) for k, v in m.groupdict().items()}
            return Match(r.model, labels)
    return None
