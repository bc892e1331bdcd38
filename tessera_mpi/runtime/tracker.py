"""Which collective this rank is in: a counter and a label, for diagnosing hangs.

Written by the call path (comm.call.Call) as every call starts and ends; read by the
watchdog thread when a deadline passes, so that a roll call can say which ranks never reached
which call. Plain attribute writes, inlined there: cheap enough for every call, and safe to
read from another thread.
"""

from __future__ import annotations

class Tracker:
    """This rank's position in the sequence of collectives."""

    def __init__(self) -> None:
        self.calls = 0
        """Calls entered so far: the number of the current or last call."""
        self.current = ""
        """The name of the call in progress, "" between calls."""
        self.phase = ""
        """What the program is doing at a coarser grain (the suite sets the check's name)."""
        self.finished = False
        """The program has ended on this rank, which waits for the others to end theirs."""

    def status(self) -> str:
        """Return e.g. "in all_reduce #12 (check 'faults')" for a roll call."""
        where = f" ({self.phase})" if self.phase else ""
        if self.finished:
            return f"finished the program after #{self.calls}"
        if self.current:
            return f"in {self.current} #{self.calls}{where}"
        return f"between collectives, after #{self.calls}{where}"


tracker = Tracker()
