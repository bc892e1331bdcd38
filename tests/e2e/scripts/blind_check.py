"""Run the suite with two extra checks that cannot fail: `blind` has a planted defect it never
looks at, `unplanted` has none. Under --self-test both must fail the self-test.

Usage: blind_check.py [suite flags...]
"""

import sys

from tessera_mpi.suite import SelfTest, register
from tessera_mpi.suite.cli import run
from tessera_mpi.suite.verdict import Culprit


@register("blind", help="a check that passes whatever happens",
          selftests=(SelfTest("a wrong coordinate it never reads",
                              lambda rt, o, clean: {"plant": "mesh.coordinate", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1)),))
def blind(ctx):
    ctx.headline = "nothing checked"


@register("unplanted", help="a check without a planted defect")
def unplanted(ctx):
    ctx.headline = "nothing planted"


sys.exit(run(sys.argv[1:]))
