"""Builders and fixtures shared by tests; no test lives here, and no test imports another test
module. Fixtures are registered by tests/conftest.py (those unit tests use too) and
tests/integration/conftest.py (servers and processes)."""
