"""Binds features/phase0_cluster.feature (steps in steps/cluster.py)."""

from pytest_bdd import scenarios

scenarios("phase0_cluster.feature")
