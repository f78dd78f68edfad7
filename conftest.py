# Loads every step module once, for all features (the phasegate plugin itself
# is a pytest11 entry point, see pyproject.toml).
pytest_plugins = [
    "steps.common",
    "steps.registry",
    "steps.cluster",
]
