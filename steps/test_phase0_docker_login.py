"""Binds features/phase0_docker_login.feature (steps in steps/vm.py)."""
from pytest_bdd import scenarios

scenarios("phase0_docker_login.feature")
