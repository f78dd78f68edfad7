"""One scenario that takes its time and cleans up after itself (as a @writes gate does)."""

import time

import pytest

from conftest import MARKS


@pytest.fixture
def created():
    (MARKS / "created").touch()
    yield
    (MARKS / "removed").touch()


def test_takes_its_time(created):
    (MARKS / "running").touch()
    time.sleep(60)
