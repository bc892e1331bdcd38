"""The process's runtime once started, and the exit code this rank should end with.

Written by the runtime's start and rebuilds (context.py), read by the crash handling and the
watchdog, which must not import the module that starts the runtime (it imports them).
"""

from __future__ import annotations

from typing import Any

runtime: Any = None
"""The current `context.Runtime`, or None before `start`."""
exit_code = 0
"""The highest exit code recorded so far (the excepthook records 1)."""


def record_exit_code(code: int) -> None:
    """Remember the code this rank should end with (the highest recorded wins)."""
    global exit_code
    exit_code = max(exit_code, code)
