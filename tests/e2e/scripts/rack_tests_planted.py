"""Rack tests with planted failures, for the pytest plugin's end-to-end test (not collected by
the project's own test run: its name does not start with test_)."""

import os

import numpy as np

from tessera_mpi import dist, op
from tessera_mpi.testing import assert_all


def test_passes(tessera_mesh, tessera_results):
    tessera_results.save("ranks", np.arange(tessera_mesh.size))
    assert_all(True, mesh=tessera_mesh)


def test_fails_on_rank_2(tessera_mesh, tessera_results, tessera_comm):
    value = 41 if tessera_comm.rank == 2 else 42
    assert_all(value == 42, f"value is {value}", mesh=tessera_mesh)


def test_hangs_when_asked(tessera_mesh):
    if os.environ.get("PLANT_HANG") and tessera_mesh.rank == 1:
        return  # skips the collective the others wait in
    op.all_reduce(dist.tensor([1.0], mesh=tessera_mesh), op="sum")
