"""Binds features/phase2_retention_dry_run.feature (steps in steps/registry.py)."""

from pytest_bdd import scenarios

scenarios("phase2_retention_dry_run.feature")
