"""The execution state machine: every allowed and every forbidden transition."""

from __future__ import annotations

import itertools

import pytest

from otahub.domain.errors import InvalidStateTransition
from otahub.domain.states import (
    TERMINAL,
    TRANSITIONS,
    ExecutionStatus,
    can_transition,
    check_transition,
    sources_of,
)

S = ExecutionStatus

ALLOWED = {
    (S.CONFIRM, S.QUEUED),
    (S.CONFIRM, S.CANCELED),
    (S.CONFIRM, S.REMOVED),
    (S.QUEUED, S.NOTIFIED),
    (S.QUEUED, S.IN_PROGRESS),
    (S.QUEUED, S.SUCCEEDED),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.REJECTED),
    (S.QUEUED, S.CANCELED),
    (S.QUEUED, S.REMOVED),
    (S.NOTIFIED, S.IN_PROGRESS),
    (S.NOTIFIED, S.SUCCEEDED),
    (S.NOTIFIED, S.FAILED),
    (S.NOTIFIED, S.REJECTED),
    (S.NOTIFIED, S.CANCELED),
    (S.NOTIFIED, S.REMOVED),
    (S.IN_PROGRESS, S.IN_PROGRESS),
    (S.IN_PROGRESS, S.SUCCEEDED),
    (S.IN_PROGRESS, S.FAILED),
    (S.IN_PROGRESS, S.REJECTED),
    (S.IN_PROGRESS, S.TIMED_OUT),
    (S.IN_PROGRESS, S.CANCELED),
}


@pytest.mark.parametrize("current,new", sorted(itertools.product(S, S)))
def test_every_pair_is_allowed_exactly_when_listed(current: S, new: S) -> None:
    expected = (current, new) in ALLOWED
    assert can_transition(current, new) is expected
    if expected:
        check_transition(current, new)
    else:
        with pytest.raises(InvalidStateTransition) as err:
            check_transition(current, new, state={"status": current.value, "version": 3})
        assert err.value.details["current"] == {"status": current.value, "version": 3}


def test_terminal_states_are_final() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.REJECTED, S.REMOVED, S.CANCELED} == TERMINAL
    for t in TERMINAL:
        assert TRANSITIONS[t] == frozenset()


def test_only_the_service_times_out_and_only_running_executions() -> None:
    assert sources_of(S.TIMED_OUT) == {S.IN_PROGRESS}
    assert sources_of(S.NOTIFIED) == {S.QUEUED}
    assert sources_of(S.QUEUED) == {S.CONFIRM}
