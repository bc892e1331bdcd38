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


def known() -> dict[str, Check]:
    """Return the checks registered so far, in run order (see `checks.registered` for all of
    the built-in ones)."""
    return dict(_REGISTRY)
