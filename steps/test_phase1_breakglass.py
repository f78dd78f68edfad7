"""Binds features/phase1_breakglass.feature (steps in steps/vm.py)."""
from pytest_bdd import scenarios

scenarios("phase1_breakglass.feature")
