"""Binds features/phase4_cluster.feature (steps in steps/cluster.py)."""

from pytest_bdd import scenarios

scenarios("phase4_cluster.feature")
