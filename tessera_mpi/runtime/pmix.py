"""Saying goodbye to the launcher's PMIx server before a fault-tolerant rank leaves with os._exit.

After a real failure the survivors leave with os._exit, not MPI_Finalize (which can hang then,
see context.finish). With Open MPI 5 under `mpirun --with-ft ulfm`, a process that ends without
finalizing PMIx is, to the launcher (prterun), a process that failed: its PMIx server tells the
other ranks of the job about it. When the survivors all leave at once, those messages go to
sockets of ranks that have just closed theirs: every write fails (ECONNRESET, printed as
`pmix_ptl_base: send_msg: write failed`), the later ones with EPIPE, and prterun counts SIGPIPEs
and aborts the job after ten of them ("SIGPIPE detected - aborting", exit 1) although every
survivor recovered (docs/ulfm.md has the counts). PMIx_Finalize alone is a local handshake with
the server (no fence, no MPI peer), so a rank can make it after a failure: the server then
records a normal end and sends nobody anything about it.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

FINALIZE_WAIT_S = 5.0
"""How long a rank waits for the PMIx server's answer before it leaves anyway."""


def loaded_library(maps: str | None = None) -> str | None:
    """Return the path of the PMIx client library this process has loaded (through MPI), or
    None: an MPI without PMIx, or one not loaded yet. `maps` is /proc/self/maps' text (tests)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) >= 6 and Path(fields[-1]).name.startswith("libpmix.so"):
            return fields[-1]
    return None


def finalize(wait_s: float = FINALIZE_WAIT_S) -> str:
    """Finalize this process's PMIx client, if it has one, waiting at most `wait_s`; local.

    Call only on the way out (nothing of MPI works after it). Returns what happened, for a
    diagnostic: "finalized", or why not. Never raises: leaving must not fail because of it.
    """
    path = loaded_library()
    if path is None:
        return "no PMIx library loaded"
    try:
        lib = ctypes.CDLL(path)  # the already loaded copy: the same handle, the same state
        lib.PMIx_Initialized.restype = ctypes.c_int
        lib.PMIx_Finalize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.PMIx_Finalize.restype = ctypes.c_int
    except (OSError, AttributeError) as error:
        return f"PMIx not usable: {error}"
    if not lib.PMIx_Initialized():
        return "PMIx not initialized"
    status: list[int] = []
    # A thread, so that a server that does not answer cannot keep the rank from leaving.
    thread = threading.Thread(target=lambda: status.append(lib.PMIx_Finalize(None, 0)), daemon=True)
    thread.start()
    thread.join(wait_s)
    if not status:
        return f"PMIx_Finalize did not return within {wait_s:g} s"
    return "finalized" if status[0] == 0 else f"PMIx_Finalize returned {status[0]}"
