"""Binds features/phase0_prepare_forgejo.feature (steps in steps/registry.py)."""

from pytest_bdd import scenarios

scenarios("phase0_prepare_forgejo.feature")
