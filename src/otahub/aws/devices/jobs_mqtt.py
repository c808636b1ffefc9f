"""The AWS IoT Jobs MQTT API for devices (`$aws/things/{thing}/jobs/...`).

`JobsTopics.handle` answers one device request with the messages to send back;
`JobsTopics.notifications` turns outbox notifications into notify / notify-next.
Both only compute messages: the MQTT bridge decides how they travel (responses go
to the requesting client even when it never subscribed, as AWS does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from otahub.aws.devices import jobs_view as view
from otahub.core.services import Report, Services
from otahub.core.services.device_jobs import DeviceJobService, Handed, RenderDocument
from otahub.domain.clock import Clock
from otahub.domain.entities import Device, Execution
from otahub.domain.errors import (
    InvalidRequest,
    InvalidStateTransition,
    NotFound,
    OtahubError,
    VersionConflict,
)
from otahub.domain.limits import MAX_JSON_DEPTH, Refused, json_depth, loads_json
from otahub.domain.states import DEVICE_SETTABLE, ExecutionStatus
from otahub.gateway.messages import Outgoing

S = ExecutionStatus
PREFIX = "$aws/things/"
JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # iot-jobs-data's JobId

__all__ = ["JobsTopics", "Outgoing", "RenderDocument", "json_refusal_code"]


class JobsTopics:
    def __init__(
        self, services: Services, clock: Clock, render: RenderDocument | None = None
    ) -> None:
        self.clock = clock
        self.device_jobs = DeviceJobService(services.executions, services.jobs, render)

    # -- requests -------------------------------------------------------------------

    async def handle(self, device: Device, topic: str, payload: bytes) -> list[Outgoing]:
        """Answer a publish on `$aws/things/{thing}/jobs/...` from `device`."""
        base = f"{PREFIX}{device.name}/jobs/"
        if not topic.startswith(base):
            return []
        rest = topic[len(base) :]
        parts = rest.split("/")
        try:
            request = _decode(payload)
        except _Refusal as exc:
            return [self._rejected(topic, exc.code, exc.message, None)]
        token = request.get("clientToken")
        if token is not None and not view.is_client_token(token):
            message = f"clientToken must be a string of at most {view.MAX_CLIENT_TOKEN} bytes"
            return [self._rejected(topic, "InvalidRequest", message, None)]
        try:
            if parts == ["get"]:
                return [await self._get_pending(device, topic, token)]
            if parts == ["start-next"]:
                return [await self._start_next(device, topic, request, token)]
            if len(parts) == 2 and parts[1] in ("get", "update"):
                if parts[0] != "$next" and not JOB_ID.fullmatch(parts[0]):
                    raise InvalidRequest("jobId must be 1 to 64 of [a-zA-Z0-9_-]")
                if parts[1] == "get":
                    return [await self._describe(device, topic, parts[0], request, token)]
                return [await self._update(device, topic, parts[0], request, token)]
        except VersionConflict as exc:
            return [
                self._rejected(
                    topic, "VersionMismatch", exc.message, token, _state(exc.details.get("current"))
                )
            ]
        except InvalidStateTransition as exc:
            return [
                self._rejected(
                    topic,
                    "InvalidStateTransition",
                    exc.message,
                    token,
                    _state(exc.details.get("current")),
                )
            ]
        except NotFound as exc:
            return [self._rejected(topic, "ResourceNotFound", exc.message, token)]
        except InvalidRequest as exc:
            return [self._rejected(topic, "InvalidRequest", exc.message, token)]
        except OtahubError as exc:
            return [self._rejected(topic, "InternalError", exc.message, token)]
        return [self._rejected(topic, "InvalidTopic", "no Jobs API at this topic", token)]

    async def _get_pending(self, device: Device, topic: str, token: Any) -> Outgoing:
        pending = await self.device_jobs.pending(device)
        body = {
            "inProgressJobs": [view.summary(e) for e in pending.in_progress],
            "queuedJobs": [view.summary(e) for e in pending.queued],
        }
        return self._accepted(topic, body, token)

    async def _start_next(
        self, device: Device, topic: str, request: dict[str, Any], token: Any
    ) -> Outgoing:
        started = await self.device_jobs.start_next(
            device,
            status_details=view.check_status_details(request.get("statusDetails")),
            step_timeout_minutes=view.parse_int(
                request.get("stepTimeoutInMinutes"), "stepTimeoutInMinutes"
            ),
        )
        body = {} if started is None else {"execution": self._execution(device, started)}
        return self._accepted(topic, body, token)

    async def _describe(
        self, device: Device, topic: str, job_ref: str, request: dict[str, Any], token: Any
    ) -> Outgoing:
        include = view.parse_bool(request.get("includeJobDocument"), "includeJobDocument", True)
        number = None
        if job_ref != "$next":
            number = view.parse_int(request.get("executionNumber"), "executionNumber")
        found = await self.device_jobs.describe(device, job_ref, execution_number=number)
        body = {} if found is None else {"execution": self._execution(device, found, include)}
        return self._accepted(topic, body, token)

    async def _update(
        self, device: Device, topic: str, job_ref: str, request: dict[str, Any], token: Any
    ) -> Outgoing:
        status = _device_status(request.get("status"))
        include_state = view.parse_bool(
            request.get("includeJobExecutionState"), "includeJobExecutionState", False
        )
        include_document = view.parse_bool(
            request.get("includeJobDocument"), "includeJobDocument", False
        )
        report = Report(
            status=status,
            status_details=view.check_status_details(request.get("statusDetails")),
            expected_version=view.parse_int(request.get("expectedVersion"), "expectedVersion"),
            execution_number=view.parse_int(request.get("executionNumber"), "executionNumber"),
            step_timeout_minutes=view.parse_int(
                request.get("stepTimeoutInMinutes"), "stepTimeoutInMinutes"
            ),
        )
        updated = await self.device_jobs.update(
            device, job_ref, report, with_document=include_document
        )
        body: dict[str, Any] = {}
        if include_state:
            body["executionState"] = view.execution_state(updated.execution)
        if updated.document is not None:
            body["jobDocument"] = view.parse_document(updated.document)
        return self._accepted(topic, body, token)

    # -- notifications --------------------------------------------------------------

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution] | None = None
    ) -> list[Outgoing]:
        """notify and notify-next after executions of `device` were released or left
        the pending set (the outbox told us). Every kind changes the pending list, so
        what to send depends on that list only; callers may pass it in."""
        del kinds
        notices = await self.device_jobs.notices(device, pending)
        now = view.epoch(self.clock.now())
        jobs: dict[str, list[dict[str, Any]]] = {}
        for ex in notices.listed:
            jobs.setdefault(view.aws_status(ex.status), []).append(view.summary(ex))
        base = f"{PREFIX}{device.name}/jobs/"
        notify = {"timestamp": now, "jobs": jobs}
        nxt: dict[str, Any] = {"timestamp": now}
        if notices.next is not None:
            nxt["execution"] = self._execution(device, notices.next)
        return [
            Outgoing(base + "notify", _dump(notify), to_requester=False),
            Outgoing(base + "notify-next", _dump(nxt), to_requester=False),
        ]

    # -- helpers --------------------------------------------------------------------

    def _execution(
        self, device: Device, handed: Handed, include_document: bool = True
    ) -> dict[str, Any]:
        return view.execution_data(
            handed.execution,
            device.name,
            handed.document,
            self.clock.now(),
            include_document=include_document,
        )

    def _accepted(self, topic: str, body: dict[str, Any], token: Any) -> Outgoing:
        body = {**body, "timestamp": view.epoch(self.clock.now())}
        if token is not None:
            body["clientToken"] = token
        return Outgoing(topic + "/accepted", _dump(body))

    def _rejected(
        self,
        topic: str,
        code: str,
        message: str,
        token: Any,
        state: dict[str, Any] | None = None,
    ) -> Outgoing:
        body: dict[str, Any] = {
            "code": code,
            "message": message,
            "timestamp": view.epoch(self.clock.now()),
        }
        if token is not None:
            body["clientToken"] = token
        if state is not None:
            body["executionState"] = state
        return Outgoing(topic + "/rejected", _dump(body))


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _decode(payload: bytes) -> dict[str, Any]:
    """The request object, within `otahub.domain.limits`; `_Refusal` otherwise."""
    try:
        request = loads_json(payload or b"{}")
    except Refused as exc:
        raise _Refusal(json_refusal_code(payload), str(exc)) from None
    if not isinstance(request, dict):
        raise _Refusal("InvalidJson", "payload is not a JSON object")
    return request


def json_refusal_code(payload: bytes) -> str:
    """Why a payload was refused, in AWS's terms: InvalidJson for what a JSON parser
    does not take (not UTF-8, NaN, nesting past the limit), InvalidRequest for
    well-formed JSON carrying a value out of limits (NUL, an integer past 64 bits).
    Costs a second parse, for refused payloads only."""
    try:
        value = json.loads(payload.decode(), parse_constant=_not_json)
    except (ValueError, RecursionError):
        return "InvalidJson"
    return "InvalidJson" if json_depth(value) > MAX_JSON_DEPTH else "InvalidRequest"


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _device_status(value: Any) -> ExecutionStatus:
    if not isinstance(value, str) or value not in {s.value for s in DEVICE_SETTABLE}:
        allowed = ", ".join(sorted(s.value for s in DEVICE_SETTABLE))
        raise InvalidRequest(f"status {value!r:.40} is not valid: one of {allowed}")
    return S(value)


def _state(current: Any) -> dict[str, Any] | None:
    if not isinstance(current, dict) or "status" not in current:
        return None
    out: dict[str, Any] = {
        "status": view.aws_status(S(current["status"])),
        "versionNumber": current.get("version"),
    }
    if current.get("status_details"):
        out["statusDetails"] = current["status_details"]
    return out


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
