"""The explanation methods, one per module; listed in :mod:`core.explain.registry`."""
