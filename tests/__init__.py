"""phasegate's own tests. `REPO`: the repository's root, for tests that read its files or run it."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
