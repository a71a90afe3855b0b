"""Options of the API fuzzing pass."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--examples",
        type=int,
        default=None,
        help="examples per operation in the API fuzzing pass (CI: a few; -m fuzz: many)",
    )
