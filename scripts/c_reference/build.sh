#!/bin/sh
# Build the C reference loop with the MPI compiler wrapper of the MPI that mpi4py uses (the
# venv's `mpicc` by default; MPICC=... for a site MPI), into build/ beside this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mpicc=${MPICC:-$root/.venv/bin/mpicc}
mkdir -p "$here/build"
"$mpicc" -O2 -o "$here/build/mpi_loop" "$here/mpi_loop.c"
echo "$here/build/mpi_loop"
