"""Binds features/phase0_push_storm.feature (steps in steps/registry.py)."""

from pytest_bdd import scenarios

scenarios("phase0_push_storm.feature")
