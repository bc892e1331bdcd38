"""Run the suite with check argv[1] wrapped in fault.inject(**json.loads(argv[2])): the emulated
GPU counters move inside that check, as a fault of the hardware would.

Usage: health_scenario.py CHECK PLAN_JSON [suite flags...] (TESSERA_BACKEND=emulated).
"""

import dataclasses
import json
import sys

from tessera_mpi import fault
from tessera_mpi.suite import registry
from tessera_mpi.suite.cli import run

CHECK, PLAN = sys.argv[1], json.loads(sys.argv[2])
wrapped = registry._REGISTRY[CHECK]


def faulty(ctx):
    with fault.inject(**PLAN):
        wrapped.run(ctx)


registry._REGISTRY[CHECK] = dataclasses.replace(wrapped, run=faulty)
sys.exit(run(sys.argv[3:]))
