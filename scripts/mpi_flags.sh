# Sourced by scripts/gpu_check.sh: mpi_flags MPIRUN VAR... prints, one a line, the flags that make
# MPIRUN start more ranks than there are cores and hand the ranks the variables VAR..., in the
# dialect of its launcher (MPIRUN_FLAGS, when set, replaces them: its words, one a line).
#
# Open MPI's mpirun (prterun) refuses more ranks than cores without --oversubscribe and passes a
# variable to remote ranks only with -x. MPICH's and Intel MPI's mpiexec (Hydra) reject both
# flags, oversubscribe without being asked and pass the caller's whole environment by default.
# Anything else gets no flags and a warning on stderr (the launch then shows what it lacks).
mpi_flags() {
  local mpirun=$1; shift
  if [ -n "${MPIRUN_FLAGS+set}" ]; then
    local word
    for word in $MPIRUN_FLAGS; do printf '%s\n' "$word"; done
    return 0
  fi
  local version
  version=$(timeout 30 "$mpirun" --version 2>&1 | head -20)
  case $version in
    *"Open MPI"*|*OpenRTE*|*PRRTE*|*prterun*)
      printf '%s\n' --oversubscribe
      local var
      for var in "$@"; do printf '%s\n' -x "$var"; done ;;
    *HYDRA*|*Hydra*|*"Intel(R) MPI"*|*MPICH*) ;;
    *) echo "gpu_check: unknown launcher $mpirun ($(printf '%s' "$version" | head -1)): no flags; set MPIRUN_FLAGS" >&2 ;;
  esac
}
