"""1F1B programs: complete, ordered and deadlock-free for every stage and micro-batch count."""

import pytest

from tessera_mpi.parallel.pipeline import Action, ScheduleError, check_schedule, in_flight, one_f_one_b


@pytest.mark.parametrize("stages", range(1, 9))
@pytest.mark.parametrize("micro_batches", [1, 2, 3, 5, 8, 12])
def test_one_f_one_b_is_deadlock_free_and_bounded(stages, micro_batches):
    programs = [one_f_one_b(stages, micro_batches, stage=s) for s in range(stages)]
    check_schedule(programs, micro_batches)
    assert [in_flight(p) for p in programs] == [min(stages - s, micro_batches) for s in range(stages)]


def test_stage_roles():
    first, middle, last = (one_f_one_b(3, 2, stage=s) for s in range(3))
    assert {a.kind for a in first} == {"forward", "send_activation", "recv_gradient", "backward"}
    assert {a.kind for a in last} == {"recv_activation", "forward", "backward", "send_gradient"}
    assert len(middle) == 6 * 2
    assert [str(a) for a in one_f_one_b(1, 2, stage=0)] == ["forward(0)", "backward(0)", "forward(1)", "backward(1)"]


def _send_first(program):
    """The textbook steady phase: send the newest activation, then receive the oldest gradient."""
    p = list(program)
    for i in range(len(p) - 1):
        if p[i].kind == "recv_gradient" and p[i + 1].kind == "send_activation":
            p[i], p[i + 1] = p[i + 1], p[i]
    return p


def test_send_before_receive_deadlocks_when_sends_wait():
    with pytest.raises(ScheduleError, match="deadlocks: stage 0 at send_activation"):
        check_schedule([_send_first(one_f_one_b(4, 6, stage=s)) for s in range(4)], 6)


def test_incomplete_or_disordered_programs_are_refused():
    programs = [list(one_f_one_b(2, 2, stage=s)) for s in range(2)]
    dropped = [programs[0], [a for a in programs[1] if a != Action("backward", 1)]]
    with pytest.raises(ScheduleError, match="stage 1: micro-batch 1 lacks backward"):
        check_schedule(dropped, 2)
    swapped = [programs[0], programs[1][1:2] + programs[1][:1] + programs[1][2:]]
    with pytest.raises(ScheduleError, match="out of order"):
        check_schedule(swapped, 2)
    with pytest.raises(ScheduleError, match="unexpected or repeated action recv_activation"):
        check_schedule([[Action("recv_activation", 0)] + programs[0], programs[1]], 2)
    with pytest.raises(ScheduleError, match="no 1F1B program"):
        one_f_one_b(2, 2, stage=2)
