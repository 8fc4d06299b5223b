"""Suite-wide wiring: the shared fixtures of tests/support that unit tests use too
(tests/integration/conftest.py adds those of servers and processes), and the `unit` /
`integration` markers given by directory so nobody has to remember them.

- tests/unit/: pure and fast (no Dagster run, no server, no subprocess, no HTTP);
  `make test-unit` runs them (and the definitions snapshot) in well under a minute.
- tests/integration/: Dagster runs, servers on 127.0.0.1, subprocesses, the built wheel.
- tests/test_definitions.py: loads the code location without running anything: unit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.environment", "tests.support.finance_report"]

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test `integration` under tests/integration/ and `unit` anywhere else."""
    for item in items:
        kind = "integration" if INTEGRATION in item.path.parents else "unit"
        item.add_marker(kind)
