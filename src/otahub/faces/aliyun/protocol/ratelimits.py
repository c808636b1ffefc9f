"""Per-(account, action) request limits with Alibaba's documented QPS (specs §2.1)."""

from __future__ import annotations

from collections.abc import Mapping

from otahub.core.clock import Clock
from otahub.core.ratelimit import Limit, RateLimiter
from otahub.faces.aliyun.protocol.errors import GatewayError, gateway

DEFAULT_QPS = 10.0
ACTION_QPS: dict[str, float] = {
    "CancelOTATaskByJob": 5.0,
    "CreateOTAStaticUpgradeJob": 20.0,
    "CreateOTADynamicUpgradeJob": 20.0,
    "ConfirmOTATask": 20.0,
    # Alibaba documents 50 QPS for this one (registry, not OTA).
    "QueryDeviceDetail": 50.0,
}


class ApiRateLimiter:
    def __init__(
        self,
        clock: Clock,
        *,
        default_qps: float = DEFAULT_QPS,
        overrides: Mapping[str, float] | None = None,
        enabled: bool = True,
    ) -> None:
        self._limiter = RateLimiter(clock)
        self._default = Limit(default_qps)
        self._limits = {
            action: Limit(qps) for action, qps in {**ACTION_QPS, **(overrides or {})}.items()
        }
        self.enabled = enabled

    def limit_for(self, action: str) -> Limit:
        return self._limits.get(action, self._default)

    def check(self, account: str, action: str) -> None:
        """Take one request from the budget or raise `Throttling.User` (HTTP 400)."""
        if not self.enabled:
            return
        if not self._limiter.allow((account, action), self.limit_for(action)):
            raise throttled()


def throttled() -> GatewayError:
    return gateway("Throttling.User")
