"""Binds features/phase3_github_archived.feature (steps in steps/vm.py)."""
from pytest_bdd import scenarios

scenarios("phase3_github_archived.feature")
