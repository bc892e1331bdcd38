"""Which collective this rank is in: a counter and a label, for diagnosing hangs.

Set by every tessera_mpi collective on entry; read by the watchdog thread when a deadline
passes, so that a roll call can say which ranks never reached which call. Plain attribute
writes: cheap enough for every call, and safe to read from another thread.
"""

from __future__ import annotations

class Tracker:
    """This rank's position in the sequence of collectives."""

    def __init__(self) -> None:
        self.calls = 0
        self.current = ""
        self.phase = ""
        """What the program is doing at a coarser grain (the suite sets the check's name)."""

    def enter(self, name: str) -> None:
        """Record that this rank entered collective `name` (call number calls + 1)."""
        self.calls += 1
        self.current = name

    def leave(self) -> None:
        self.current = ""

    def status(self) -> str:
        """Return e.g. "in all_reduce #12 (check 'faults')" for a roll call."""
        where = f" ({self.phase})" if self.phase else ""
        if self.current:
            return f"in {self.current} #{self.calls}{where}"
        return f"between collectives, after #{self.calls}{where}"


tracker = Tracker()
