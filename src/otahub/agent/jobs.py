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
    def __init__(
        self, link: DeviceLink, thing: str, *, timeout: float = 10.0, attempts: int = 3
    ) -> None:
        self.link = link
        self.base = f"$aws/things/{thing}/jobs"
        self.timeout = timeout
        self.attempts = attempts

    async def start(self) -> None:
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

    async def next_execution(self) -> dict[str, Any] | None:
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
        broker under load may drop a request or its answer)."""
        tokens: set[str] = set()
        for attempt in range(self.attempts):
            token = uuid.uuid4().hex[:16]
            tokens.add(token)
            await self.link.publish(topic, json.dumps({**body, "clientToken": token}), qos=1)
            try:
                # Each wait twice the last: a slow server is not made slower by retries.
                return await self._answer(topic, tokens, self.timeout * 2**attempt)
            except TimeoutError:
                if attempt == self.attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _answer(self, topic: str, tokens: set[str], seconds: float) -> dict[str, Any]:
        """The answer to any copy of this request (a late one counts too)."""
        accepted = asyncio.create_task(self._wait_token(topic + "/accepted", tokens))
        rejected = asyncio.create_task(self._wait_token(topic + "/rejected", tokens))
        done, _ = await asyncio.wait(
            {accepted, rejected}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for t in (accepted, rejected):
            t.cancel()
        if rejected in done:
            answer = rejected.result()
            raise UpdateRejected(f"the service rejected {topic}: {answer}", answer)
        if not done:
            raise TimeoutError(f"no answer on {topic}")
        return accepted.result()

    async def _wait_token(self, topic: str, tokens: set[str]) -> dict[str, Any]:
        while True:
            body: dict[str, Any] = json.loads(await self.link.router.next(topic, 3600))
            if body.get("clientToken") in tokens:
                return body

    async def wait_for_work(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await self.link.router.next(f"{self.base}/notify-next", seconds)


class HttpJobs:
    """The `iot-jobs-data` plane: no notifications, so the device polls."""

    def __init__(self, client: AsyncAwsClient, thing: str, *, poll_interval: float = 5.0) -> None:
        self.client = client
        self.thing = thing
        self.poll_interval = poll_interval

    async def start(self) -> None:
        return None

    async def next_execution(self) -> dict[str, Any] | None:
        return await self.describe("$next")

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
        execution: dict[str, Any] | None = out.get("execution")
        if execution is not None and isinstance(execution.get("jobDocument"), str):
            # The HTTP plane sends the document as a string, MQTT as an object.
            execution["jobDocument"] = json.loads(execution["jobDocument"])
        return execution

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
