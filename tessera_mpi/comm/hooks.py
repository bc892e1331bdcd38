"""Where planned faults meet the data path: the call path consults these on every call.

`fault.inject` opens a block by appending itself to `active`; the call path calls `before` as
a call starts (drops, hangs, delays strike there) and `after` on the call's result buffer
(corruption strikes there). Tested for emptiness first, so they cost nothing outside a block.
"""

from __future__ import annotations

from typing import Any, Protocol


class Injector(Protocol):
    """What the call path asks of an open fault-injection block."""

    def before(self, name: str) -> None: ...

    def after(self, result: Any) -> None: ...


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
