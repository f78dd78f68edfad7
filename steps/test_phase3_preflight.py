"""Binds features/phase3_preflight.feature (steps in steps/infra_repo.py)."""

from pytest_bdd import scenarios

scenarios("phase3_preflight.feature")
