"""The built-in checks; importing this package registers them, in run order."""

from . import mesh, sharding  # noqa: F401
