"""Run the suite with checks wrapped in fault.inject: the emulated GPU counters move inside each
named check, as a fault of the hardware would.

Usage: health_scenario.py PLANS_JSON [suite flags...], PLANS_JSON mapping a check's name to its
fault.inject arguments, e.g. '{"health": {"ecc_error": 5}}' (TESSERA_BACKEND=emulated).
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


for name, plan in json.loads(sys.argv[1]).items():
    registry._REGISTRY[name] = wrapped(registry._REGISTRY[name], plan)
sys.exit(run(sys.argv[2:]))
