"""Fleet simulator faults: exact counts per share, disjoint, the same for a seed."""

from __future__ import annotations

from collections import Counter

import pytest

from otahub.agent.fleet import Faults, FleetReport, assign_faults, expected_states


def test_counts_are_exact_disjoint_and_seeded() -> None:
    faults = Faults(fail=0.05, reject=0.02, hang=0.01, disconnect=0.02, throttle=0.01)
    drawn = assign_faults(10_000, faults, seed=3)
    assert Counter(drawn) == {
        None: 8900,
        "fail": 500,
        "reject": 200,
        "hang": 100,
        "disconnect": 200,
        "throttle": 100,
    }
    assert drawn == assign_faults(10_000, faults, seed=3)
    assert drawn != assign_faults(10_000, faults, seed=4)
    assert expected_states(10_000, faults, wait_timed_out=False) == {
        "SUCCEEDED": 9200,
        "FAILED": 500,
        "REJECTED": 200,
        "HUNG": 100,
    }
    assert expected_states(10_000, faults, wait_timed_out=True)["TIMED_OUT"] == 100


def test_shares_beyond_the_fleet_are_refused() -> None:
    with pytest.raises(ValueError):
        Faults(fail=0.6, reject=0.5).counts(10)


def test_percentiles_are_nearest_rank() -> None:
    report = FleetReport(
        devices=100,
        transport="mqtt",
        files="mqtt",
        job_id=None,
        states={},
        faults={},
        resumed=0,
        register_seconds=0,
        connect_seconds=0,
        seconds_to_done=0,
        update_seconds=[float(i) for i in range(1, 101)],
    )
    assert (report.percentile(50), report.percentile(90), report.percentile(99)) == (
        50.0,
        90.0,
        99.0,
    )
    assert FleetReport(**{**report.__dict__, "update_seconds": []}).percentile(50) is None
