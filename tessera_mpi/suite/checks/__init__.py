"""The built-in checks; importing this package registers them, in run order."""

from . import mesh, sharding, determinism, bandwidth, links, bisection, soak, parallelism, faults  # noqa: F401  (import order is run order)
