"""Per-(account, action) request limits with Alibaba's documented QPS (specs §2.1)."""

from __future__ import annotations

from collections.abc import Mapping

from otahub.aliyun.protocol.errors import GatewayError, gateway
from otahub.core.ratelimit import Limit, RateLimiter
from otahub.domain.clock import Clock

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


def limiter_from_spec(clock: Clock, spec: str | None) -> ApiRateLimiter:
    """`None`: Alibaba's documented limits. `off`: no limits. Otherwise requests per
    second as `default=10,CreateOTAVerifyJob=20` (a bare number sets the default)."""
    if spec is None or not spec.strip():
        return ApiRateLimiter(clock)
    if spec.strip().lower() == "off":
        return ApiRateLimiter(clock, enabled=False)
    default = DEFAULT_QPS
    overrides: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, value = item.strip().rpartition("=")
        try:
            qps = float(value)
        except ValueError:
            raise ValueError(f"bad Alibaba rate limit {item!r}") from None
        if qps <= 0:
            raise ValueError(f"bad Alibaba rate limit {item!r}")
        if not sep or name == "default":
            default = qps
        else:
            overrides[name] = qps
    return ApiRateLimiter(clock, default_qps=default, overrides=overrides)


def throttled() -> GatewayError:
    return gateway("Throttling.User")
