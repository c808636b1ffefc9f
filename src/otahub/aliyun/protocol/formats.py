"""Field formats of Alibaba responses: wrapped lists, paging fields, times (specs §1.6)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last a datetime holds


def wrap(item_name: str, items: Iterable[Any]) -> dict[str, list[Any]]:
    """`wrap("SimpleOTATaskInfo", tasks)` -> `{"SimpleOTATaskInfo": [...]}`; an empty
    list stays an empty list under its item name."""
    return {item_name: list(items)}


def paging(
    total: int, page_size: int, current_page: int, *, page_key: str = "CurrentPage"
) -> dict[str, int]:
    """`Total`, `PageSize`, `PageCount`, `CurrentPage` (`Page` for QueryPageByApplyId)."""
    count = math.ceil(total / page_size) if page_size > 0 else 0
    return {"Total": total, "PageSize": page_size, "PageCount": count, page_key: current_page}


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime; the clock gives aware UTC times")
    return when.astimezone(UTC)


def utc_ms(when: datetime) -> str:
    """`2019-11-04T06:21:54.607Z`: the `Utc*` fields."""
    t = _utc(when)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def utc_minute(when: datetime) -> str:
    """`2020-10-13T09:46Z`: ListOTAModuleByProduct's `GmtCreate`/`GmtModified`."""
    return _utc(when).strftime("%Y-%m-%dT%H:%MZ")


def gmt_plain(when: datetime, tz: timezone = CHINA_STANDARD_TIME) -> str:
    """`2018-08-06 10:48:41`: the device queries' `Gmt*` fields. Alibaba's samples pair
    `GmtActive 10:48:41` with `UtcActive 02:48:41Z`, so they are China time (UTC+8)."""
    return _utc(when).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def gmt_rfc(when: datetime) -> str:
    """`Wed, 20-Feb-2019 02:16:09 GMT`: an older `Gmt*` style in some samples."""
    return _utc(when).strftime("%a, %d-%b-%Y %H:%M:%S GMT")


def epoch_ms(when: datetime) -> int:
    return int(_utc(when).timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    """`ScheduleTime` and `ScheduleFinishTime` arrive as 13-digit epoch milliseconds."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)
