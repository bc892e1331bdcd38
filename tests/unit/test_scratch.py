"""The deterministic sum's scratch buffers: one per role and thread, replaced on a new shape."""

import threading

import numpy as np

from tessera_mpi.reduction import scratch


def test_the_same_role_and_shape_is_the_same_buffer_and_a_new_shape_replaces_it():
    scratch.release()
    a = scratch.buffer(np, "rows", (4, 8), np.float32)
    assert scratch.buffer(np, "rows", (4, 8), np.float32) is a
    assert scratch.buffer(np, "received", (4, 8), np.float32) is not a
    b = scratch.buffer(np, "rows", (4, 9), np.float32)
    assert b is not a and b.shape == (4, 9) and b.dtype == np.float32
    assert scratch.buffer(np, "rows", (4, 9), np.float64) is not b
    scratch.release()
    assert scratch.buffer(np, "rows", (4, 9), np.float64).shape == (4, 9)


def test_each_thread_has_its_own():
    scratch.release()
    mine = scratch.buffer(np, "rows", (16,), np.float64)
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(scratch.buffer(np, "rows", (16,), np.float64)))
    worker.start()
    worker.join(timeout=30)
    assert len(theirs) == 1 and theirs[0] is not mine
    assert scratch.buffer(np, "rows", (16,), np.float64) is mine
