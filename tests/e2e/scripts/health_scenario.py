"""Run the suite with checks wrapped in fault.inject: the emulated GPU counters move inside each
named check, as a fault of the hardware would.

Usage: health_scenario.py PLANS_JSON [suite flags...], PLANS_JSON mapping a check's name to its
fault.inject arguments, e.g. '{"health": {"ecc_error": 5}}' (TESSERA_BACKEND=emulated). The key
"at_start" instead gives links that are down before the suite's first snapshot,
'{"at_start": {"link_down": [{"rank": 6, "link": 4}]}}': a cable never seated, which no check
saw go down.
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


def down_at_start(links):
    """Take the listed links of the emulated GPUs down as the runtime opens them."""
    import importlib

    from mpi4py import MPI

    # The module, not the package's `telemetry()` function of the same name.
    telemetry = importlib.import_module("tessera_mpi.hardware.telemetry")
    opened = telemetry._open

    def _open(*args, **kwargs):
        tel = opened(*args, **kwargs)
        for link in links:
            if link["rank"] == MPI.COMM_WORLD.rank:
                tel.emulated.link_down(link["link"])
        return tel

    telemetry._open = _open


plans = json.loads(sys.argv[1])
if "at_start" in plans:
    down_at_start(plans.pop("at_start")["link_down"])
for name, plan in plans.items():
    registry._REGISTRY[name] = wrapped(registry._REGISTRY[name], plan)
sys.exit(run(sys.argv[2:]))
