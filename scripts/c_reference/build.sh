#!/bin/sh
# Build the C reference loop with the MPI compiler wrapper of the MPI that mpi4py uses (the
# venv's `mpicc` by default; MPICC=... for a site MPI) into build/ beside this script: the
# program build/mpi_loop and the library build/libmpi_loop.so (the same loop, for
# scripts/bench_vs_c.py's interleaved mode).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mpicc=${MPICC:-$root/.venv/bin/mpicc}
mkdir -p "$here/build"
"$mpicc" -O2 -o "$here/build/mpi_loop" "$here/mpi_loop.c"
"$mpicc" -O2 -shared -fPIC -DMPI_LOOP_LIBRARY -o "$here/build/libmpi_loop.so" "$here/mpi_loop.c"
echo "$here/build/mpi_loop"
