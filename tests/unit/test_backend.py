"""The array backend switch and how buffers reach MPI, on host and (emulated) device memory."""

import numpy as np
import pytest

from tessera_mpi.errors import ConfigError
from tessera_mpi.runtime.backend import EmulatedDeviceBackend, NumpyBackend, select_backend
from tessera_mpi.runtime.cuda_aware import detect_cuda_aware
from tessera_mpi.runtime.device import device_ordinal, visible_devices
from tessera_mpi.runtime.transfer import Staging


def test_select_by_name_and_env(monkeypatch):
    assert isinstance(select_backend("numpy"), NumpyBackend)
    monkeypatch.setenv("TESSERA_BACKEND", "emulated")
    assert select_backend().name == "emulated"
    monkeypatch.setenv("TESSERA_BACKEND", "tpu")
    with pytest.raises(ConfigError, match="choose one of auto, numpy, cupy, emulated"):
        select_backend()


def test_auto_falls_back_to_numpy_without_a_gpu(monkeypatch):
    monkeypatch.setattr("tessera_mpi.runtime.backend._usable_cupy", lambda: (None, "no GPU here"))
    assert select_backend("auto").name == "numpy"
    with pytest.raises(ConfigError, match="no GPU here"):
        select_backend("cupy")


def test_host_buffers_go_to_mpi_as_they_are():
    staging = Staging(NumpyBackend(), direct=False)
    a = np.arange(4.0)
    assert not staging.staged
    assert staging.send_buffer(a) is a and staging.recv_buffer(a) is a


def test_device_buffers_are_synchronized_and_staged_without_cuda_aware_mpi():
    backend = EmulatedDeviceBackend()
    staging = Staging(backend, direct=False)
    send, out = np.arange(4.0), np.zeros(4)
    host_send = staging.send_buffer(send)
    host_recv = staging.recv_buffer(out)
    assert staging.staged and staging.path == "staged"
    assert host_send is not send and host_recv is not out
    host_recv[...] = host_send * 2  # what MPI would write
    staging.finish(host_recv, out)
    assert np.array_equal(out, [0, 2, 4, 6])
    assert backend.syncs == 2
    assert backend.bytes_to_host == 32 and backend.bytes_from_host == 32
    assert backend.pinned_allocations == 2 and backend.exports == 0


def test_device_buffers_go_straight_to_cuda_aware_mpi():
    backend = EmulatedDeviceBackend()
    staging = Staging(backend, direct=True)
    a = np.ones(3)
    sent, received = staging.send_buffer(a), staging.recv_buffer(a)
    # Exported as CuPy arrays are (DLPack, __cuda_array_interface__), never a host copy.
    assert sent.array is a and received.array is a and staging.path == "direct"
    assert backend.syncs == 2 and backend.bytes_to_host == 0 and backend.pinned_allocations == 0


def test_cuda_aware_override_and_detection(monkeypatch):
    monkeypatch.setenv("TESSERA_CUDA_AWARE", "1")
    assert detect_cuda_aware("MVAPICH2") == (True, "TESSERA_CUDA_AWARE=1")
    monkeypatch.setenv("TESSERA_CUDA_AWARE", "yes")
    with pytest.raises(ConfigError, match="0 or 1"):
        detect_cuda_aware("Open MPI")
    monkeypatch.delenv("TESSERA_CUDA_AWARE")
    from mpi4py import MPI

    aware, source = detect_cuda_aware(MPI.get_vendor()[0])
    assert aware is False  # the wheel is built --without-cuda
    monkeypatch.setenv("MV2_USE_CUDA", "1")
    assert detect_cuda_aware("MVAPICH2") == (True, "MV2_USE_CUDA=1")


def test_visible_devices_and_ordinals():
    assert visible_devices({}) is None
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert [device_ordinal(r, 4) for r in range(6)] == [0, 1, 2, 3, 0, 1]
    assert device_ordinal(3, 1) == 0 and device_ordinal(0, 0) is None
