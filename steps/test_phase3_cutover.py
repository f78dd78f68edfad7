"""Binds features/phase3_cutover.feature (steps in steps/cluster.py)."""

from pytest_bdd import scenarios

scenarios("phase3_cutover.feature")
