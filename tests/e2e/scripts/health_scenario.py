"""Run the suite with checks wrapped in fault.inject: the emulated GPU counters move inside each
named check, as a fault of the hardware would.

Usage: health_scenario.py PLANS_JSON [suite flags...], PLANS_JSON mapping a check's name to its
fault.inject arguments, e.g. '{"health": {"ecc_error": 5}}' (TESSERA_BACKEND=emulated). The key
"at_start" instead gives links that are down before the suite's first snapshot,
'{"at_start": {"link_down": [{"rank": 6, "link": 4}]}}': a cable never seated, which no check
saw go down; and ranks whose GPU NVML cannot open, '{"at_start": {"no_nvml": [1]}}'.
"""

import dataclasses
import json
import sys

from tessera_mpi import fault
from tessera_mpi.suite import registry
from tessera_mpi.suite.cli import run


def wrapped(check, plan):
    def faulty(ctx):
        with fault.inject(**plan):
            check.run(ctx)
    return dataclasses.replace(check, run=faulty)


def at_start(links=(), no_nvml=()):
    """Take the listed links of the emulated GPUs down as the runtime opens them; leave the
    ranks of `no_nvml` without telemetry, as where NVML is missing on some hosts."""
    import importlib

    from mpi4py import MPI

    # The module, not the package's `telemetry()` function of the same name.
    telemetry = importlib.import_module("tessera_mpi.hardware.telemetry")
    opened = telemetry._open

    def _open(*args, **kwargs):
        if MPI.COMM_WORLD.rank in no_nvml:
            return telemetry.Telemetry("", reason="no NVML: planted by health_scenario (no_nvml)")
        tel = opened(*args, **kwargs)
        for link in links:
            if link["rank"] == MPI.COMM_WORLD.rank:
                tel.emulated.link_down(link["link"])
        return tel

    telemetry._open = _open


plans = json.loads(sys.argv[1])
if "at_start" in plans:
    start = plans.pop("at_start")
    at_start(start.get("link_down", ()), start.get("no_nvml", ()))
for name, plan in plans.items():
    registry._REGISTRY[name] = wrapped(registry._REGISTRY[name], plan)
sys.exit(run(sys.argv[2:]))
