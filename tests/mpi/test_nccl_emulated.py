"""The emulated NCCL transport at 4 ranks gives MPI's results for every collective and form:
out of place and in place, uneven gathers, reduce-scatters and all-to-all (grouped sends and
receives), a broadcast from a non-zero root, exchanges and windows, and a fresh communicator
after close. The correctly rounded sum over it is MPI's, bit for bit, in every format. On
host buffers (this job's backend) `op.*(transport="nccl")` fails every rank the same way."""

import numpy as np
import pytest

from tessera_mpi import dist, op, runtime
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.nccl import EmulatedNccl, NcclTransport, host_device
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.errors import ConfigError
from tessera_mpi.reduction import deterministic as det
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.formats import supported
from tessera_mpi.runtime.backend import EmulatedDeviceBackend
from tessera_mpi.runtime.transfer import Staging
from tessera_mpi.suite.checks.determinism import adversarial, contribution
from tessera_mpi.testing import assert_all


def pair(comm):
    return MpiTransport(comm), NcclTransport(comm, EmulatedNccl(comm), host_device(EmulatedDeviceBackend()),
                                             emulated=True)


def data(rank, n, dtype=np.float64):
    return (np.arange(n) * 3 + 7 * rank + 1).astype(dtype)


def same(name, a, b):
    assert_all(np.array_equal(a, b), f"{name}: emulated NCCL {a[:6]} vs MPI {b[:6]}")


@pytest.mark.mpi(min_size=4)
def test_every_collective_matches_mpi(world):
    mpi, nccl = pair(world)
    p, me = world.size, world.rank
    out = {}
    for name, t in (("mpi", mpi), ("nccl", nccl)):
        r = {}
        x = data(me, 12)
        r["all_reduce"] = np.zeros(12); t.all_reduce(x, r["all_reduce"], op="max")
        r["all_reduce_ip"] = x.copy(); t.all_reduce(None, r["all_reduce_ip"])
        r["all_gather"] = np.zeros(12 * p); t.all_gather(x, r["all_gather"])
        g = np.zeros(12 * p); g[me * 12:(me + 1) * 12] = x; t.all_gather(None, g); r["all_gather_ip"] = g
        counts = [r_ + 1 for r_ in range(p)]
        v = np.zeros(sum(counts)); t.all_gather(data(me, counts[me]), v, counts=counts); r["all_gatherv"] = v
        big = data(me, 12 * p)
        r["reduce_scatter"] = np.zeros(12); t.reduce_scatter(big, r["reduce_scatter"])
        uneven = np.zeros(counts[me]); t.reduce_scatter(data(me, sum(counts)), uneven, op="max", counts=counts)
        r["reduce_scatterv"] = uneven
        ip = big.copy(); t.reduce_scatter(None, ip); r["reduce_scatter_ip"] = ip[:12]
        b = data(me, 9); t.broadcast(b, root=2); r["broadcast"] = b
        r["all_to_all"] = np.zeros(12 * p); t.all_to_all(big, r["all_to_all"])
        a = big.copy(); t.all_to_all(None, a); r["all_to_all_ip"] = a
        sc = [(me + j) % 3 + 1 for j in range(p)]
        rc = [(j + me) % 3 + 1 for j in range(p)]
        av = np.zeros(sum(rc)); t.all_to_all(data(me, sum(sc)), av, send_counts=sc, recv_counts=rc)
        r["all_to_allv"] = av
        s = np.zeros(12); t.sendrecv(x, s, dest=(me + 1) % p, source=(me - 1) % p); r["sendrecv"] = s
        s2 = x.copy(); t.sendrecv(None, s2, dest=(me + 1) % p, source=(me - 1) % p); r["sendrecv_ip"] = s2
        peer = me ^ 1
        got = [np.zeros(12), np.zeros(12)]
        requests = [t.start_recv(g_, source=peer, tag=5) for g_ in got] + \
                   [t.start_send(x, dest=peer, tag=5) for _ in got]
        t.wait_all(requests)
        r["window"] = np.concatenate(got)
        out[name] = r
    for key in out["mpi"]:
        same(key, out["nccl"][key], out["mpi"][key])
    nccl.close()
    again = np.ones(4)
    nccl.all_reduce(None, again)  # a new communicator, bootstrapped again over MPI
    same("after close", again, np.full(4, float(p)))
    nccl.close()


def groups(comm):
    """The same ranks as an MPI group and as an emulated-NCCL group on emulated device buffers."""
    runtime.start()
    backend = EmulatedDeviceBackend()
    mpi, nccl = pair(comm)
    members = tuple(range(comm.size))
    return (Group(comm=comm, transport=mpi, staging=Staging(backend, direct=True), members=members),
            Group(comm=comm, transport=nccl, staging=Staging(backend, direct=True, stream_ordered=True, export=False),
                  members=members))


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("dtype", supported(), ids=str)
def test_the_correctly_rounded_sum_over_emulated_nccl_is_mpis_bit_for_bit(world, dtype):
    """The all-to-all algorithm's exchange of slices and all-gather (and the other algorithms'
    moves) over NCCL's calling conventions give MPI's bits and the rational reference's."""
    comm = world.Dup()
    over_mpi, over_nccl = groups(comm)
    size = comm.size
    cases = {"adversarial": adversarial(size, dtype, random_columns=60),
             "random": np.stack([contribution(r, 1001, dtype) for r in range(size)])}
    wrong = []
    for name, matrix in cases.items():
        want = reference_sums(matrix).tobytes()
        mine = np.ascontiguousarray(matrix[comm.rank])
        for algorithm in ("alltoall", "gather", "digits"):
            got = {}
            for label, group in (("mpi", over_mpi), ("nccl", over_nccl)):
                with group.call("all_reduce", mine.nbytes, mine.dtype) as call:
                    got[label] = np.ascontiguousarray(det.deterministic_sum(call, np, mine, algorithm=algorithm))
            if got["nccl"].tobytes() != got["mpi"].tobytes() or got["mpi"].tobytes() != want:
                wrong.append(f"{name} {algorithm}")
    assert_all(over_nccl.transport.live, "the NCCL group made no communicator: nothing went over NCCL")
    assert_all(not wrong, f"{np.dtype(dtype).name} at {size} ranks: NCCL differs from MPI in {wrong}")
    over_nccl.transport.close()
    comm.Free()


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("check", [True, False])
def test_op_over_nccl_on_host_buffers_fails_every_rank_the_same_way(world, check):
    mesh = dist.Mesh(axes=["dp"])
    x = dist.tensor((8,), mesh=mesh)
    seen = []
    for call in (lambda: op.all_reduce(x, transport="nccl", check=check),
                 lambda: op.broadcast(x, transport="nccl", check=check),
                 lambda: op.shift(x, axis="dp", transport="nccl")):
        try:
            call()
            seen.append("no error")
        except ConfigError as exc:
            seen.append(str(exc))
    ok = all("(transport='nccl'): NCCL is unavailable: the numpy backend keeps buffers in host memory" in s
             for s in seen)
    texts = world.allgather(seen)
    assert_all(ok and all(t == texts[0] for t in texts), f"errors {seen}")
    try:
        op.all_reduce(x, transport="gloo" if mesh.rank == 0 else "mpi")
        raised = ""
    except ValueError as exc:
        raised = str(exc)
    assert_all("transport='gloo'; choose one of mpi, nccl (on rank 0)" in raised, raised)
    y = op.all_reduce(x, transport="mpi")  # and the job goes on over MPI
    assert_all(float(y.numpy()[0]) == float(x.numpy()[0]) * mesh.size, "the next all-reduce")
