"""One scenario that takes its time and cleans up after itself (as a @writes gate does)."""

import os
import time
from pathlib import Path

import pytest

MARKS = Path(os.environ["INTERRUPT_EXAMPLE_MARKS"])


@pytest.fixture
def created():
    (MARKS / "created").touch()
    yield
    (MARKS / "removed").touch()


def test_takes_its_time(created):
    (MARKS / "running").touch()
    time.sleep(60)
