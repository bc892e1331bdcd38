"""The built-in checks, one module each; importing this package registers them, in run order."""

from ..registry import Check, known
from . import health, mesh, sharding, determinism, bandwidth, links, bisection, soak, parallelism, faults  # noqa: F401  (import order is run order)

health.register_end()  # health runs first and last


def registered() -> dict[str, Check]:
    """Return every known check by name, in run order (the built-in ones and any registered
    by a user's code before the suite runs)."""
    return known()
