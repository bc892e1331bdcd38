"""The registry of named checks: `@register("name", help=..., selftests=...)` on a function of a
CheckContext, and the planted defects each check must catch under --self-test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .verdict import Culprit

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .context import CheckContext
    from .options import SuiteOptions


@dataclass(frozen=True)
class SelfTest:
    """One defect a check must catch: what `fault.inject` plants, and the culprit it must name.

    `plan(runtime, options, clean)` returns fault.inject's arguments for the job as it stands,
    sized from the clean run's attributes where a defect must stand out of this machine's noise
    (`clean` is None for a check whose planted runs come first); `culprit(size)` the part the
    check must blame in a job of `size` ranks. With `exact`, it must blame nothing else (a
    global shortfall aside); otherwise it may name more (a check that lists every victim).
    `needs_duration`: the check skips without --duration, so the self-test gives it one.
    `scope(options, size)`: the options of the planted run only, where a defect strikes every
    call and the full scope would take long (the links check's peers). `planted_first`: the
    planted runs come before the clean one (the faults check's clean run loses ranks).
    `optional`: where the clean run is skipped (no NVML to read), nothing is planted and the
    check has no self-test rows.
    """

    defect: str
    plan: Callable[[Runtime, SuiteOptions, dict[str, Any] | None], dict[str, Any]]
    culprit: Callable[[int], Culprit]
    exact: bool = True
    needs_duration: bool = False
    scope: Callable[[SuiteOptions, int], SuiteOptions] | None = None
    planted_first: bool = False
    optional: bool = False


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
