"""Test support shared across test packages (registered as pytest plugins by tests/conftest.py)."""
