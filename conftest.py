# Loads every step module once, for all features (the phasegate plugin itself
# is a pytest11 entry point, see pyproject.toml).
pytest_plugins = [
    "phasegate.pytest_project",  # --project NAME
    "steps.common",
    "steps.metrics",
    "steps.bake_clock",
    "steps.vm",
    "steps.infra_repo",
    "steps.dual_push",
    "steps.registry",
    "steps.cluster",
]
