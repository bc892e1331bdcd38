"""The emulated NCCL transport at 4 ranks gives MPI's results for every collective and form:
out of place and in place, uneven gathers and all-to-all (grouped sends and receives), a
broadcast from a non-zero root, exchanges and windows, and a fresh communicator after close."""

import numpy as np
import pytest

from tessera_mpi.comm.nccl import EmulatedNccl, NcclTransport, host_device
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.runtime.backend import EmulatedDeviceBackend
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
