"""The package version (the results schema has its own, in results/schema.py)."""

__version__ = "0.1.0"
