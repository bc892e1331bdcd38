"""Progress through a long sweep, printed by rank 0: a bar on a terminal, plain lines in logs."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

LOG_EVERY_S = 10.0
"""In batch logs, at most one progress line per this many seconds."""
PROGRESS_ENV = "TESSERA_PROGRESS"


def _is_terminal(path: str) -> bool:
    return path.startswith(("/dev/pts/", "/dev/tty"))


def stdout_is_terminal(stream: TextIO) -> bool:
    """Return whether the person running the job sees `stream` on a terminal.

    Open MPI gives every rank a pseudo-terminal even when mpirun's own output goes to a file,
    so a rank's isatty() is not enough: where the launcher is this rank's parent (mpirun on
    one node), its standard output decides. TESSERA_PROGRESS=bar or =lines overrides.
    """
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("bar", "lines"):
        return forced == "bar"
    try:
        if not stream.isatty():
            return False
        return _is_terminal(os.readlink(f"/proc/{os.getppid()}/fd/1"))
    except (OSError, ValueError):
        return False


class Progress:
    """Counts steps of a known total and reports the last one reached with an ETA.

    Local: only the rank that prints should make one with `enabled=True`; other ranks' calls do
    nothing, so the same code runs everywhere.
    """

    def __init__(self, label: str, total: int, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(1, total)
        self.enabled = enabled
        self.stream = sys.stdout if stream is None else stream
        self.tty = enabled and stdout_is_terminal(self.stream)
        self.done = 0
        self.start = time.monotonic()
        self.last_line = self.start

    def eta_s(self) -> float:
        """Return the estimated seconds left, from the mean time per step so far."""
        elapsed = time.monotonic() - self.start
        return elapsed / max(self.done, 1) * (self.total - self.done)

    def step(self, text: str) -> None:
        """Record one finished step, described by `text` (e.g. "all_reduce 1 MiB")."""
        self.done += 1
        self.total = max(self.total, self.done)
        if not self.enabled:
            return
        now = time.monotonic()
        line = f"{self.label}: {text} ({self.done}/{self.total}, ETA {self.eta_s():.0f} s)"
        if self.tty:
            width = 24
            filled = width * self.done // self.total
            self.stream.write(f"\r    [{'#' * filled}{'.' * (width - filled)}] {line}\033[K")
            self.stream.flush()
        elif now - self.last_line >= LOG_EVERY_S:
            self.stream.write(f"    {line}\n")
            self.stream.flush()
            self.last_line = now

    def close(self) -> None:
        """End the bar (terminal) so the next output starts on a fresh line."""
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
