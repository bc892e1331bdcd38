"""Group.control: an MPI failure met between a measurement's calls (a barrier, a gather) is
translated as one met in a call; other errors pass as they are."""

import pytest
from mpi4py import MPI

from tessera_mpi.comm import call
from tessera_mpi.errors import DeviceLostError


def _group():
    return call.Group(comm=MPI.COMM_SELF, transport=None, staging=None, members=(0,))


def test_an_mpi_failure_between_calls_becomes_the_translated_error(monkeypatch):
    seen = []

    def lost(comm, exc, what, where):
        seen.append((comm, what))
        return DeviceLostError(f"{what} failed: ranks lost (rank 3)", (3,))

    monkeypatch.setattr(call, "mpi_lost", lost)
    with pytest.raises(DeviceLostError, match="all_reduce at 8 B failed: ranks lost") as caught:
        with _group().control("all_reduce at 8 B"):
            raise MPI.Exception(MPI.ERR_OTHER)
    assert isinstance(caught.value.__cause__, MPI.Exception)
    assert seen == [(MPI.COMM_SELF, "all_reduce at 8 B")]


def test_an_error_that_is_no_failure_stays_itself(monkeypatch):
    monkeypatch.setattr(call, "mpi_lost", lambda comm, exc, what, where: exc)
    with pytest.raises(MPI.Exception):
        with _group().control("barrier"):
            raise MPI.Exception(MPI.ERR_OTHER)
    with pytest.raises(ValueError, match="not MPI"):
        with _group().control("barrier"):
            raise ValueError("not MPI")
