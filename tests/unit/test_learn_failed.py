"""learn_failed's agreement loop, against a fake communicator: a uniform agreement error (a
failure some member had not acknowledged) means acknowledge and agree again; a member that
never joins costs at most agree_seconds(size), never a hang."""

import pytest
from mpi4py import MPI

from tessera_mpi.runtime import ft


class _Request:
    def __init__(self, outcome):
        self.outcome = outcome

    def Test(self):
        if self.outcome == "raise":
            raise MPI.Exception(MPI.ERR_OTHER)
        return self.outcome == "done"


class _Comm:
    """Agreements end as `outcomes` say, in turn; records the calls."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def Ack_failed(self):
        self.calls.append("ack")

    def Iagree(self, flag):
        self.calls.append("agree")
        return _Request(self.outcomes.pop(0))

    def Get_failed(self):
        return MPI.GROUP_EMPTY


def test_a_failed_agreement_is_acknowledged_and_agreed_again_until_one_succeeds():
    comm = _Comm("raise", "raise", "done")
    assert ft.learn_failed(comm, MPI.COMM_SELF) == ()
    assert comm.calls == ["ack", "agree", "ack", "agree", "ack", "agree", "ack"]


def test_one_successful_agreement_is_enough():
    comm = _Comm("done")
    ft.learn_failed(comm, MPI.COMM_SELF)
    assert comm.calls == ["ack", "agree", "ack"]


def test_a_member_that_never_agrees_costs_the_bound_and_no_more(monkeypatch):
    waited = []
    monkeypatch.setattr(ft, "wait_for", lambda request, timeout: waited.append(timeout) or request.Test())
    comm = _Comm("pending")
    ft.learn_failed(comm, MPI.COMM_SELF)
    # One wait, bounded by the job's agreement time, then what this rank knows.
    assert len(waited) == 1 and 0 < waited[0] <= ft.agree_seconds(1)
    assert comm.calls == ["ack", "agree", "ack"]


def test_errors_until_the_deadline_end_the_loop(monkeypatch):
    monkeypatch.setattr(ft, "AGREE_S", 0.0)
    monkeypatch.setattr(ft, "AGREE_S_PER_RANK", 0.0)
    comm = _Comm(*["raise"] * 5)
    ft.learn_failed(comm, MPI.COMM_SELF)
    assert comm.calls == ["ack", "agree", "ack"]


@pytest.mark.parametrize("size, seconds", [(8, 2.32), (72, 4.88), (144, 7.76)])
def test_the_bound_grows_with_the_job(size, seconds):
    assert ft.agree_seconds(size) == pytest.approx(seconds)
