"""The collective agreement helper: same verdict on every rank, failing ranks named."""

import time

import pytest
from mpi4py import MPI

from tessera_mpi.testing import assert_all
from tessera_mpi.runtime.agree import AgreementTimeout, agree, agree_equal
from tessera_mpi.errors import DivergenceError


@pytest.mark.mpi(min_size=4)
def test_everyone_ok(world):
    verdict = agree(world, True)
    assert_all(verdict.ok and verdict.failing == () and verdict.level == 0)


@pytest.mark.mpi(min_size=4)
def test_failures_are_named_with_their_messages(world):
    bad = world.rank in (1, 3)
    verdict = agree(world, not bad, f"rank {world.rank} broke", severity=2 if world.rank == 3 else 1)
    same = world.allgather((verdict.ok, verdict.failing, dict(verdict.messages), verdict.level))
    assert_all(all(s == same[0] for s in same), "the verdict differs between ranks")
    assert_all(verdict.failing == (1, 3) and verdict.level == 2)
    assert_all(verdict.messages == {1: "rank 1 broke", 3: "rank 3 broke"})
    assert_all(verdict.summary() == "rank 1: rank 1 broke\nrank 3: rank 3 broke", verdict.summary())


@pytest.mark.mpi(min_size=4)
def test_same_messages_are_grouped(world):
    verdict = agree(world, world.rank == 0, "disk full")
    assert_all(verdict.summary() == f"ranks 1-{world.size - 1}: disk full", verdict.summary())


@pytest.mark.mpi(min_size=4)
def test_timeout_when_a_rank_is_late(world):
    comm = world.Dup()
    timed_out = False
    if world.rank == 0:
        time.sleep(1.0)
        agree(comm, True)
    else:
        try:
            agree(comm, True, timeout=0.2)
        except AgreementTimeout:
            timed_out = True
    world.Barrier()
    assert_all(timed_out == (world.rank != 0))


@pytest.mark.mpi(min_size=4)
def test_agree_equal(world):
    agree_equal(world, ("tp", (6, 6, 2)), what="the spec")
    with pytest.raises(DivergenceError, match=r"rank 2 passed 'b'.*must be the same|ranks 0-1,3.*rank 2 passed 'b'"):
        agree_equal(world, "b" if world.rank == 2 else "a", what="the name")
    MPI.COMM_WORLD.Barrier()
