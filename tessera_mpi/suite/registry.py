"""The registry of named checks: `@register("name", help=..., selftests=...)` on a function of a
CheckContext, and the planted defects each check must catch under --self-test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .verdict import Culprit

if TYPE_CHECKING:
    from .context import CheckContext
    from .options import SuiteOptions


@dataclass(frozen=True)
class SelfTest:
    """One defect a check must catch: what `fault.inject` plants, and the culprit it must name.

    `plan(size, options)` returns fault.inject's arguments for a job of `size` ranks;
    `culprit(size)` the part the check must blame. With `exact`, it must blame nothing else
    (a global shortfall aside); otherwise it may name more (a check that lists every victim).
    `needs_duration`: the check skips without --duration, so the self-test gives it one.
    """

    defect: str
    plan: Callable[[int, SuiteOptions], dict[str, Any]]
    culprit: Callable[[int], Culprit]
    exact: bool = True
    needs_duration: bool = False


@dataclass(frozen=True)
class Check:
    """A named collective check; `run` is called on every rank with that rank's context."""

    name: str
    run: Callable[[CheckContext], None]
    help: str
    selftests: tuple[SelfTest, ...] = ()


_REGISTRY: dict[str, Check] = {}


def register(name: str, *, help: str, selftests: tuple[SelfTest, ...] = ()
             ) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register the decorated function as check `name`; checks run in registration order."""

    def decorate(func: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if name in _REGISTRY:
            raise ValueError(f"a check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, run=func, help=help, selftests=selftests)
        return func

    return decorate


def known() -> dict[str, Check]:
    """Return the checks registered so far, in run order (see `checks.registered` for all of
    the built-in ones)."""
    return dict(_REGISTRY)
