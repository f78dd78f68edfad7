# The two commands of the README. Both set up the machine first (idempotent).
.PHONY: setup gates test

setup:
	@./scripts/setup.sh

# The main job: start the embedded lab, run every gate against it, write the report.
gates: setup
	.venv/bin/phasegate lab run

# The suite's own tests (unit, lab end-to-end, fault matrix), under the network guard, four at a time
# (pytest-xdist: each worker its own lab; tests/conftest.py groups what must share a worker); the linter and
# the library's type check first (configured in pyproject.toml).
test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy --config-file pyproject.toml
	.venv/bin/python -m pytest tests -p tests.netguard -q -n 4 --dist loadgroup
