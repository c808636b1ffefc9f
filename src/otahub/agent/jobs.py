"""The two ways an AWS device talks to the Jobs service: the Jobs MQTT topics
(`$aws/things/{thing}/jobs/...`) and the HTTP data plane (`iot-jobs-data`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any, Protocol

from otahub.agent.aws_http import AsyncAwsClient, AwsError
from otahub.agent.mqtt_rpc import DeviceLink


class UpdateRejected(Exception):
    def __init__(self, message: str, answer: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.answer = answer
        self.code = (answer or {}).get("code")


class JobsChannel(Protocol):
    async def start(self) -> None: ...

    async def next_execution(self) -> dict[str, Any] | None: ...

    async def describe(self, job_id: str) -> dict[str, Any] | None: ...

    async def update(self, job_id: str, status: str, details: dict[str, str]) -> None: ...

    async def wait_for_work(self, seconds: float) -> None:
        """Return when there may be a new job (a notification, or a poll is due)."""
        ...


class MqttJobs:
    """The Jobs MQTT topics. Answers are matched to requests by client token as they
    arrive (no queue per topic, no task per request).

    `use_notified`: take the execution a notify-next message carries (job document
    included) instead of asking for `$next` again, as the FreeRTOS OTA agent does; a
    device that has not been told asks."""

    def __init__(
        self,
        link: DeviceLink,
        thing: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        use_notified: bool = False,
    ) -> None:
        self.link = link
        self.base = f"$aws/things/{thing}/jobs"
        self.timeout = timeout
        self.attempts = attempts
        self.use_notified = use_notified
        self.notified: dict[str, Any] | None = None
        self._waiting: dict[str, asyncio.Future[tuple[bool, dict[str, Any]]]] = {}

    async def start(self) -> None:
        self.link.router.add_handler(f"{self.base}/", self._on_answer)
        # A broker like Mosquitto delivers answers only to subscribers (AWS delivers
        # them to the requester anyway); `+/get` covers `$next/get` and `{jobId}/get`.
        await self.link.subscribe(
            [
                f"{self.base}/{t}"
                for t in (
                    "notify-next",
                    "+/get/accepted",
                    "+/get/rejected",
                    "+/update/accepted",
                    "+/update/rejected",
                )
            ]
        )

    def _on_answer(self, topic: str, payload: bytes) -> bool:
        if topic.endswith("/accepted"):
            ok = True
        elif topic.endswith("/rejected"):
            ok = False
        else:
            return False  # notify-next: queued for wait_for_work
        try:
            body = json.loads(payload)
        except ValueError:
            return True
        token = body.get("clientToken") if isinstance(body, dict) else None
        future = self._waiting.get(token) if isinstance(token, str) else None
        if future is not None and not future.done():
            future.set_result((ok, body))
        return True

    async def next_execution(self) -> dict[str, Any] | None:
        if self.use_notified and self.notified is not None:
            execution, self.notified = self.notified, None
            return execution
        return await self.describe("$next")

    async def describe(self, job_id: str) -> dict[str, Any] | None:
        answer = await self._request(f"{self.base}/{job_id}/get", {})
        execution: dict[str, Any] | None = answer.get("execution")
        return execution

    async def update(self, job_id: str, status: str, details: dict[str, str]) -> None:
        body = {"status": status, "statusDetails": details}
        try:
            await self._request(f"{self.base}/{job_id}/update", body)
        except UpdateRejected as exc:
            # A retried update whose first copy did arrive finds the state it asked for.
            state = (exc.answer or {}).get("executionState") or {}
            if exc.code != "InvalidStateTransition" or state.get("status") != status:
                raise

    async def _request(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish, wait for the answer with our token; ask again when none comes (a
        broker under load may drop a request or its answer). An answer to any copy
        counts, a late one too."""
        future: asyncio.Future[tuple[bool, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        tokens: list[str] = []
        try:
            for attempt in range(self.attempts):
                token = uuid.uuid4().hex[:16]
                tokens.append(token)
                self._waiting[token] = future
                await self.link.publish(topic, json.dumps({**body, "clientToken": token}), qos=1)
                # Each wait twice the last: a slow server is not made slower by retries.
                done, _ = await asyncio.wait({future}, timeout=self.timeout * 2**attempt)
                if done:
                    break
            else:
                raise TimeoutError(f"no answer on {topic}")
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
        ok, answer = future.result()
        if not ok:
            raise UpdateRejected(f"the service rejected {topic}: {answer}", answer)
        return answer

    async def wait_for_work(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            raw = await self.link.router.next(f"{self.base}/notify-next", seconds)
            if self.use_notified:
                with contextlib.suppress(ValueError):
                    message = json.loads(raw)
                    if isinstance(message, dict):
                        self.notified = message.get("execution")


class HttpJobs:
    """The `iot-jobs-data` plane: no notifications, so the device polls.

    `start_next`: take the next job with StartNextPendingJobExecution (it comes back
    IN_PROGRESS, `start_details` as its status details) instead of describing `$next`
    and then reporting IN_PROGRESS: one call instead of two, as AWS suggests."""

    def __init__(
        self,
        client: AsyncAwsClient,
        thing: str,
        *,
        poll_interval: float = 5.0,
        start_next: bool = False,
        start_details: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.thing = thing
        self.poll_interval = poll_interval
        self.start_next = start_next
        self.start_details = start_details or {"step": "download"}

    async def start(self) -> None:
        return None

    async def next_execution(self) -> dict[str, Any] | None:
        if not self.start_next:
            return await self.describe("$next")
        out = await self.client.call(
            "StartNextPendingJobExecution", thingName=self.thing, statusDetails=self.start_details
        )
        return _parsed(out.get("execution"))

    async def describe(self, job_id: str) -> dict[str, Any] | None:
        try:
            out = await self.client.call(
                "DescribeJobExecution",
                thingName=self.thing,
                jobId=job_id,
                includeJobDocument=True,
            )
        except AwsError as exc:
            if exc.status == 404:
                return None
            raise
        return _parsed(out.get("execution"))

    async def update(self, job_id: str, status: str, details: dict[str, str]) -> None:
        try:
            await self.client.call(
                "UpdateJobExecution",
                thingName=self.thing,
                jobId=job_id,
                status=status,
                statusDetails=details,
            )
        except AwsError as exc:
            if exc.status in (400, 404, 409, 410):
                raise UpdateRejected(f"the service rejected {status}: {exc}") from exc
            raise

    async def wait_for_work(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, self.poll_interval))


def _parsed(execution: dict[str, Any] | None) -> dict[str, Any] | None:
    if execution is not None and isinstance(execution.get("jobDocument"), str):
        # The HTTP plane sends the document as a string, MQTT as an object.
        execution["jobDocument"] = json.loads(execution["jobDocument"])
    return execution
