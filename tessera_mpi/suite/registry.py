"""The registry of named checks: `@register("name", help=...)` on a function of a CheckContext."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import CheckContext


@dataclass(frozen=True)
class Check:
    """A named collective check; `run` is called on every rank with that rank's context."""

    name: str
    run: Callable[[CheckContext], None]
    help: str


_REGISTRY: dict[str, Check] = {}


def register(name: str, *, help: str) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register the decorated function as check `name`; checks run in registration order."""

    def decorate(func: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if name in _REGISTRY:
            raise ValueError(f"a check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, run=func, help=help)
        return func

    return decorate


def registered() -> dict[str, Check]:
    """Return every known check by name, in run order."""
    from . import checks  # noqa: F401  (importing the package registers the built-in checks)

    return dict(_REGISTRY)
