from pytest_bdd import scenarios

scenarios("phase0_metrics.feature")
