"""docs/aws-operations.md is what the generator writes from the handlers today."""

from __future__ import annotations

from pathlib import Path

from otahub.aws.optable import table


def test_operations_table_is_current() -> None:
    committed = Path(__file__).parents[3] / "docs" / "aws-operations.md"
    assert committed.read_text() == table(), "run: python -m otahub.aws.optable"
