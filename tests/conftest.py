"""Options of the cross-context runs (here, at the root of tests/, so pytest knows them early)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--examples",
        type=int,
        default=None,
        help="examples per operation in the API fuzzing pass (CI: a few; -m fuzz: many)",
    )
    parser.addoption(
        "--kills", type=int, default=None, help="worker kills in the chaos run (CI: 20)"
    )
