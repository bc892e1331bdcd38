"""Where planned faults meet the data path: the call path consults these on every call.

`fault.inject` opens a block by appending itself to `active`; the call path calls `before` as
a call starts (drops, hangs, delays, throttling strike there) and `after` on the call's result
buffer (corruption strikes there); taps elsewhere ask `planted`. Tested for emptiness first, so
they cost nothing outside a block.
"""

from __future__ import annotations

from typing import Any, Protocol


class Injector(Protocol):
    """What the call path and the taps ask of an open fault-injection block."""

    def before(self, name: str) -> None: ...

    def after(self, result: Any) -> None: ...

    def plants(self, name: str) -> bool: ...

    def lost(self, error: BaseException) -> None: ...


active: list[Injector] = []
"""Open `fault.inject` blocks on this rank, innermost last."""


def before(name: str) -> None:
    """Strike the faults planned for the call named `name` as it starts."""
    for injection in tuple(active):
        injection.before(name)


def after(result: Any) -> None:
    """Strike the faults planned for the result buffer of the call that just finished."""
    for injection in tuple(active):
        injection.after(result)


def lost(error: BaseException) -> None:
    """Tell the open blocks that a collective's transport failure became `error` on this rank."""
    for injection in tuple(active):
        injection.lost(error)


def planted(name: str) -> bool:
    """Whether an open block plants defect `name` (fault.PLANTS) on this rank: asked by the
    taps, the points of the framework where a planted defect alters what a rank observes."""
    return any(injection.plants(name) for injection in active)
