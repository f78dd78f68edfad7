"""Binds features/phase4_registry_vm.feature (steps in steps/vm.py)."""
from pytest_bdd import scenarios

scenarios("phase4_registry_vm.feature")
