"""kill_session ends every process of a launched job, including those in process groups of their own."""

import subprocess
import sys
import time

import pytest

from tessera_mpi.util.procs import kill_session

# A "launcher" that starts a child in a process group of its own (as Open MPI does for each rank),
# which then stops itself like a hung rank, while the launcher waits for ever.
LAUNCHER = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)"],
                         process_group=0)
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_session_reaches_children_in_their_own_process_group():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    child = int(launcher.stdout.readline())
    time.sleep(0.3)
    killed = kill_session(launcher.pid)
    assert launcher.pid in killed and child in killed
    launcher.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # killed, waiting for init to reap it
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"process {child} survived kill_session")
