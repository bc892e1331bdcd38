"""Run the suite with the faults check's two-victim loss going unobserved (argv: suite flags).

The defect is planted here, in the test, not in the framework: survivors that caught
drop-two's DeviceLostError report that they did not, so the check must fail blaming drop-two's
victims. Those are numbered in the world that drop-one's loss shrank and renumbered, which is
what the culprits must not be named by.
"""

import sys

from tessera_mpi.suite.checks import faults
from tessera_mpi.suite.cli import run

observed = faults._lost
faults._lost = lambda exc, victims: False if len(victims) == 2 else observed(exc, victims)
sys.exit(run(sys.argv[1:]))
