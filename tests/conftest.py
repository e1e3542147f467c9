"""Shared fixtures: a fresh emulated /opt/ml job per test."""

import pytest

from emulator import Job


@pytest.fixture
def job(tmp_path):
    return Job(tmp_path / "opt_ml")
