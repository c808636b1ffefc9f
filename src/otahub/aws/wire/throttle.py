"""A per-account request rate for the AWS APIs (iot, iot-jobs-data, signer).

One token bucket per account, refilled at `rate` requests a second and holding at
most `burst`; a request over the budget is refused with the service's throttling
error (iot: ThrottlingException 400; iot-jobs-data: ThrottlingException 429;
signer: TooManyRequestsException 429). Configured by `--aws-request-rate` and
`--aws-request-burst` (OTAHUB_AWS_REQUEST_RATE / _BURST); a rate of 0 turns it off.
"""

from __future__ import annotations

from otahub.aws.wire.errors import from_core
from otahub.core.ratelimit import Limit, RateLimiter
from otahub.domain.clock import Clock
from otahub.domain.errors import Throttled


class AccountThrottle:
    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        self.limit = Limit(rate, burst or None)
        self._limiter = RateLimiter(clock)

    @classmethod
    def from_settings(
        cls, clock: Clock, rate: float | None, burst: float | None
    ) -> AccountThrottle | None:
        return cls(clock, rate, burst) if rate and rate > 0 else None

    def check(self, account_id: str, service: str) -> None:
        """Take one request from the account's budget or raise the throttling error."""
        decision = self._limiter.acquire(account_id, self.limit)
        if not decision.allowed:
            raise from_core(
                service,
                Throttled(
                    f"Rate exceeded: account {account_id} is limited to "
                    f"{self.limit.rate:g} requests per second"
                ),
            )
