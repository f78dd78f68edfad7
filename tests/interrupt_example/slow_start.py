"""A gate project whose start is slow: pytest is still loading its conftests when a Ctrl-C comes."""

import os
import time
from pathlib import Path

MARKS = Path(os.environ["INTERRUPT_EXAMPLE_MARKS"])
(MARKS / "loading").touch()
time.sleep(float(os.environ.get("INTERRUPT_EXAMPLE_SLOW_START", "0")))
