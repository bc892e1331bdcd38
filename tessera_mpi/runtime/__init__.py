"""The runtime: MPI start-up, one rank per device, the array backend and how buffers reach MPI."""

from .backend import ArrayBackend, select_backend
from .context import (
    Runtime,
    current,
    finish,
    live_meshes,
    on_rebuild,
    rebuild,
    record_exit_code,
    register_mesh,
    set_collective_timeout,
    start,
)
from .crash import fatal
from .device import Placement
from .launcher import LaunchInfo, detect_launcher
from .watchdog import Watchdog

__all__ = [
    "ArrayBackend",
    "LaunchInfo",
    "Placement",
    "Runtime",
    "Watchdog",
    "current",
    "finish",
    "on_rebuild",
    "rebuild",
    "record_exit_code",
    "register_mesh",
    "detect_launcher",
    "fatal",
    "live_meshes",
    "select_backend",
    "set_collective_timeout",
    "start",
]
