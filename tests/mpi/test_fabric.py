"""The sweep engine, profiling sessions and point-to-point windows at 4 ranks."""

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi.testing import assert_all
from tessera_mpi import dist, op, profile, runtime
from tessera_mpi.comm import native
from tessera_mpi.fabric.busbw import bus_factor
from tessera_mpi.fabric.p2p import Buffers, exchange_window, receive_window, send_window
from tessera_mpi.fabric.sweep import VARIANTS, kernel, measure, verify
from tessera_mpi.fabric.timing import time_loop


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("collective", sorted(VARIANTS))
def test_every_collective_and_variant_is_verified_and_timed(world, collective):
    rt = runtime.start()
    for in_place in VARIANTS[collective]:
        for size in (8, 3000, 1 << 16):
            m = measure(collective, world, rt, size_bytes=size, in_place=in_place, budget_s=0.01)
            same = world.allgather((m.timing.iterations, m.size_bytes, round(m.timing.t_max, 12)))
            ok = (m.wrong == 0 and m.timing.iterations >= 2 and all(s == same[0] for s in same)
                  and m.busbw_gbps == pytest.approx(m.algbw_gbps * bus_factor(collective, world.size)))
            assert_all(ok, f"{collective} in_place={in_place} size={size}: wrong={m.wrong_by_rank}")


@pytest.mark.mpi(min_size=4)
def test_verification_counts_wrong_elements_on_the_rank_that_has_them(world):
    rt = runtime.start()
    k = kernel("all_reduce", world, rt, count=100, dtype=np.float32, in_place=False)
    expected = k.expected

    def planted():
        good = expected()
        if world.rank == 2:
            good[7] += 1
        return good

    k.expected = planted
    wrong = verify(k, world, rt.backend.xp)
    assert_all(wrong == (0, 0, 1, 0), f"{wrong}")


@pytest.mark.mpi(min_size=4)
def test_profile_session_records_op_calls(world):
    mesh = dist.Mesh(axes=["dp"])
    x = dist.tensor((64, 16), mesh=mesh)
    with profile.session() as outer:
        with profile.session() as inner:
            op.all_reduce(x, "sum")
            op.all_reduce(x, "sum")
        op.all_gather(dist.tensor((64, 16), mesh=mesh, layout=dist.ShardSpec(("row",), ("dp",))))
        figures = outer.report(show=False)
    names = [(f.name, f.size_bytes, f.calls, f.participants) for f in figures]
    expected = [("all_reduce", 64 * 16 * 4, 2, world.size), ("all_gather", 64 * 16 * 4, 1, world.size)]
    assert_all(names == expected and len(inner.records) == 2, f"{names}")
    everywhere = world.allgather([(f.time_us_max, f.busbw_GBps) for f in figures])
    assert_all(all(e == everywhere[0] for e in everywhere), "the report differs between ranks")
    f = figures[0]
    assert_all(f.busbw_GBps == pytest.approx(f.algbw_GBps * 2 * (world.size - 1) / world.size))


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("loop", ["compiled", "python"])
def test_point_to_point_windows_deliver_the_sender_pattern(world, loop, monkeypatch):
    rt = runtime.start()
    if loop == "python":
        monkeypatch.setattr(native, "_loaded", None)
        monkeypatch.setattr(native, "_reason", "forced by the test")
    buffers = Buffers.make(rt, world.rank, 1000, 3)
    peer = world.rank ^ 1
    if world.rank % 2 == 0:
        seconds = send_window(world, rt, buffers, peer)
        wrong = 0
    else:
        seconds, wrong = 1.0, receive_window(world, rt, buffers, peer)
    both, bad = exchange_window(world, rt, buffers, peer)
    assert_all(seconds > 0 and both > 0 and wrong == 0 and bad == 0 and buffers.loop == loop,
               f"seconds={seconds} both={both} wrong={wrong},{bad} loop={buffers.loop}")


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("collective", sorted(VARIANTS))
def test_compiled_and_python_loops_give_the_same_results_and_iteration_counts(world, collective):
    rt = runtime.start()
    for in_place in VARIANTS[collective]:
        k = kernel(collective, world, rt, count=33, dtype=np.float32, in_place=in_place)
        agreed = world.allreduce(int(k.batch is not None), op=MPI.MIN)
        assert_all(agreed == 1, f"{collective}: no compiled loop on some rank")
        # The same buffers after the same three calls, by either loop.
        k.load()
        k.batch(0, np.empty(4))
        compiled = np.array(k.result(), copy=True)
        k.load()
        for _ in range(3):
            k.run()
        same = bool(np.array_equal(compiled, k.result()))
        timings = {loop: time_loop(world, k.run, iterations=41, warmup=1, batch=k.batch if loop == "compiled" else None)
                   for loop in ("compiled", "python")}
        counts = [(t.loop, t.iterations) for t in timings.values()]
        m = measure(collective, world, rt, size_bytes=1 << 12, in_place=in_place, budget_s=0.01)
        forced = measure(collective, world, rt, size_bytes=1 << 12, in_place=in_place, budget_s=0.01, loop="python")
        assert_all(same and counts == [("compiled", 41), ("python", 41)] and m.wrong == 0 and forced.wrong == 0
                   and (m.timing.loop, forced.timing.loop) == ("compiled", "python"),
                   f"{collective} in_place={in_place}: same={same} counts={counts} wrong={m.wrong},{forced.wrong}")
