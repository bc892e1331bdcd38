"""Exclusive time per phase of a training step: a nested phase's time is not its parent's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mpi4py import MPI

PHASES = ("forward", "backward", "tp_comm", "pp_comm", "dp_comm", "optimizer", "record")
"""Compute forward and backward, the three axes' communication (waiting for the peer
included), the SGD update, and copying what the check verifies to the host."""


class PhaseClock:
    """Accumulates MPI.Wtime seconds per phase; entering a phase pauses the enclosing one.

    `synchronize` runs at every phase boundary so that queued device work is charged to the
    phase that queued it. Local (no communication).
    """

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self.synchronize = synchronize
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._stack: list[str] = []
        self._since = 0.0

    def _charge(self) -> None:
        self.synchronize()
        now = MPI.Wtime()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._since
        self._since = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the time inside the block to `name` (one of PHASES)."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def take(self) -> dict[str, float]:
        """Return the seconds per phase so far and start again from zero."""
        taken, self.seconds = self.seconds, dict.fromkeys(PHASES, 0.0)
        return taken
