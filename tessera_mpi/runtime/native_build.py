"""Building the package's C files into shared libraries: once per machine, cached on disk, under
a file lock so that the ranks of one machine build each library once between them.

Two libraries are built this way: the compiled timed loop (comm/timed_loop.c, with the MPI's
own `mpicc`) and the certified exact sum (reduction/certified_sum.c, with the C compiler).
Local: no communication; safe to call on every rank at once.

The cache folder is $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera_mpi, else
~/.cache/tessera_mpi. A library's file name carries a digest of its source, the compiler, the
flags and whatever else the caller says the result depends on (the MPI library's version, the
CPU model), so a different compiler, MPI or CPU builds its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import NativeBuildError

CACHE_ENV = "TESSERA_CACHE_DIR"


def cache_dir() -> Path:
    """Return the folder the built libraries are cached in."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tessera_mpi"


def cpu_identity() -> str:
    """Return what a library compiled for this CPU (-march=native) depends on: the machine, the
    CPU model and its feature flags (a cache shared by different nodes must not hand one's
    instructions to another)."""
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    lines: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.split(":", 1)[0].strip() in wanted and line not in lines:
                    lines.append(line)
                if not line.strip() and lines:
                    break  # the first processor describes them all
    except OSError:
        pass
    return platform.machine() + "\n" + "".join(lines)


def build(source: Path, *, stem: str, compiler: str, flag_sets: Sequence[Sequence[str]],
          depends_on: Sequence[str] = ()) -> Path:
    """Return the cached shared library of `source`, compiling it if this machine lacks it.

    `flag_sets` are tried in order (e.g. with -march=native first, then without) until one
    compiles; each gives its own cached file. Raises NativeBuildError when none compiles.
    """
    text = source.read_bytes()
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in flag_sets:
        digest = hashlib.sha256(b"\0".join([text, os.path.realpath(compiler).encode(), " ".join(flags).encode(),
                                            *(d.encode() for d in depends_on)])).hexdigest()[:16]
        target = folder / f"{stem}-{digest}.so"
        if target.exists():
            return target
        with open(folder / f"{stem}-{digest}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if target.exists():
                return target
            fd, partial = tempfile.mkstemp(dir=folder, suffix=".so")
            os.close(fd)
            try:
                try:
                    done = subprocess.run([compiler, *flags, "-shared", "-fPIC", "-o", partial, str(source)],
                                          capture_output=True, text=True, timeout=120, check=False)
                except (OSError, subprocess.SubprocessError) as exc:
                    raise NativeBuildError(f"{compiler} could not run: {exc}") from exc
                if done.returncode:
                    message = f"{compiler} {' '.join(flags)} failed ({done.returncode}): {done.stderr.strip()[:400]}"
                    errors.append(message)
                    continue
                os.replace(partial, target)  # atomic: another machine sharing the folder sees all or nothing
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
        return target
    raise NativeBuildError("; ".join(errors) or f"no flags to build {source.name} with")
