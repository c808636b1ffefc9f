from __future__ import annotations

import pytest

from otahub.domain.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
