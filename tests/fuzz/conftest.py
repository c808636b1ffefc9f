"""Fixtures of the fuzz suite: a whole otahub in process on each database, its log
watched; and the closing table of every surface's totals.

Runs with the rest of `make test`. By hand:
    .venv/bin/pytest tests/fuzz -q -p no:cacheprovider          # the bounded run
    OTAHUB_FUZZ_EXAMPLES=1 .venv/bin/pytest tests/fuzz -q -k sqlite   # a quick one
    OTAHUB_FUZZ_EXAMPLES=40 .venv/bin/pytest tests/fuzz -q            # a long one
    OTAHUB_FUZZ_VERBOSE=1 ...   # also what each surface's inputs got back (coverage)
    .venv/bin/pytest -m "not fuzz"                                # everything else
OTAHUB_FUZZ_HANG_S sets how long an input may take before it counts as a hang."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otahub.store.db import Database
from tests.conftest import truncate_all
from tests.fuzz.harness import TOTALS, LogWatch, Server, watching_logs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: the bounded fuzz suite (OTAHUB_FUZZ_EXAMPLES=2 for a quick run)"
    )


@pytest.fixture
async def fuzz_server(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, LogWatch]]:
    if db_url.startswith("postgres"):
        db = Database(db_url)
        await truncate_all(db)
        await db.dispose()
    with watching_logs() as watch:
        server = await Server.start(db_url, tmp_path / "data")
        try:
            yield server, watch
        finally:
            await server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TOTALS.tallies:
        return
    terminalreporter.section("otahub fuzz totals")
    for line in TOTALS.table():
        terminalreporter.write_line(line)
    if os.environ.get("OTAHUB_FUZZ_VERBOSE"):  # what the inputs got back: how deep they reach
        for (surface, database), tally in sorted(TOTALS.tallies.items()):
            common = ", ".join(f"{k} x{n}" for k, n in tally.answers.most_common(40))
            terminalreporter.write_line(f"{surface} on {database}: {common}")
