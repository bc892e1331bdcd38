"""Which collective this rank is in: a counter and a label, for diagnosing hangs.

Written by the call path (comm.call.Call) as every call starts and ends (and `seconds`, the
time inside them, as every call ends); read by the
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
        self.seconds = 0.0
        """Host seconds spent inside the calls counted in `calls` so far (waiting for the other
        ranks included): what the suite records per check as a rank's time in MPI calls."""
        self.phase = ""
        """What the program is doing at a coarser grain (the suite sets the check's name)."""
        self.finished = False
        """The program has ended on this rank, which waits for the others to end theirs."""
        self.base = 0
        """Calls before the current scope began (a check, a fault-injection block): numbers in
        a status count from there. Every rank starts a scope at the same point of the program,
        so these numbers compare across ranks even where earlier work issued a different number
        of calls on different ranks (sub-mesh collectives, per-rank link tests)."""

    def status(self) -> str:
        """Return e.g. "in all_reduce #12 (check 'faults')" for a roll call."""
        where = f" ({self.phase})" if self.phase else ""
        n = self.calls - self.base
        if self.finished:
            return f"finished the program after #{n}"
        if self.current:
            return f"in {self.current} #{n}{where}"
        return f"between collectives, after #{n}{where}"

    def scope(self) -> int:
        """Start counting from here (local); return the previous base, to restore at its end."""
        previous, self.base = self.base, self.calls
        return previous


tracker = Tracker()
