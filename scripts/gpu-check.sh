#!/usr/bin/env bash
# GPU check: run kwtop against a real NVIDIA GPU under a known load and keep everything it saw.
#
#   cargo build --release            # beforehand: this script builds nothing
#   scripts/gpu-check.sh OUTDIR      # ~2 minutes, well inside 5
#
# Needs: nvidia-smi, python3 with PyTorch built for CUDA, and ./target/release/kwtop (or $KWTOP).
# It only reads GPU state (nvidia-smi queries, NVML reads); it changes no GPU setting (no clocks,
# power limits, persistence or compute mode).
#
# What it does, writing everything into OUTDIR:
#   1. nvidia-smi state (nvidia-smi-start.txt, -q, gpus.csv, compute apps) and env.txt (driver, model,
#      torch, kwtop version, date); nvidia-smi energy.consumption/power.draw (smi-energy-start.csv).
#   2. Starts an independent NVML poller (python ctypes, read-only): the total energy counter (mJ)
#      and power every 200 ms → nvml-poll.csv; measures the idle power for a few seconds before any
#      workload (becomes [attribution] gpu_idle_w in kwtop.toml so the split is reproducible).
#   3. `kwtop record` (1 s interval) → recording.jsonl, running across the whole window.
#   4. An idle holder: a PyTorch process that allocates $GPU_CHECK_HOLD_GIB GiB on the GPU, then
#      sleeps; then a busy process: large bf16 matmuls for $GPU_CHECK_BUSY_SECONDS s (default 60).
#   5. `kwtop snapshot --json` in the middle → snapshot-mid.json (+ nvidia-smi-mid.txt).
#   6. When the busy process ends: stops kwtop record (SIGTERM), then the holder, then the poller;
#      nvidia-smi energy again (smi-energy-end.csv), nvidia-smi-end.txt.
#   7. `kwtop report --json` over the recording → report.json (+ report.txt), params.json, and runs
#      scripts/gpu-check-analyze.py OUTDIR → analysis.txt / analysis.json.
#
# Environment: KWTOP (binary), PYTHON (python3), GPU_CHECK_GPU (NVML/PCI index, default 0),
# GPU_CHECK_BUSY_SECONDS (60), GPU_CHECK_HOLD_GIB (4), GPU_CHECK_IDLE_AFTER_S (20).
set -euo pipefail

if [ $# -ne 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && exit 0 || exit 2
fi

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
OUT="$1"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
KWTOP="${KWTOP:-$repo/target/release/kwtop}"
PY="${PYTHON:-python3}"
GPU="${GPU_CHECK_GPU:-0}"
BUSY_S="${GPU_CHECK_BUSY_SECONDS:-60}"
HOLD_GIB="${GPU_CHECK_HOLD_GIB:-4}"
IDLE_AFTER_S="${GPU_CHECK_IDLE_AFTER_S:-20}"
TOOLS="$OUT/tools"
mkdir -p "$TOOLS"
: >"$OUT/log.txt"

log() { printf '[gpu-check %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/log.txt" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Only processes this script started, by pid.
started=()
cleanup() {
  local p
  for p in "${started[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this script needs a machine with an NVIDIA GPU"
[ -x "$KWTOP" ] || die "no kwtop binary at $KWTOP: run 'cargo build --release' first (or set KWTOP)"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
  die "$PY cannot use the GPU through PyTorch (pip install torch, with CUDA)"
export CUDA_DEVICE_ORDER=PCI_BUS_ID # CUDA device numbers = nvidia-smi/NVML indices

# ---- 1. state before --------------------------------------------------------------------------
log "GPU state → $OUT"
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  echo "kernel: $(uname -srm)"
  echo "kwtop: $("$KWTOP" --version 2>&1)"
  echo "torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1)"
  nvidia-smi --query-gpu=index,name,driver_version,vbios_version --format=csv,noheader | sed 's/^/gpu: /'
} >"$OUT/env.txt"
nvidia-smi >"$OUT/nvidia-smi-start.txt" 2>&1 || true
nvidia-smi -q >"$OUT/nvidia-smi-q-start.txt" 2>&1 || true
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,driver_version,pstate,power.limit,enforced.power.limit,memory.total,memory.used,utilization.gpu,temperature.gpu \
  --format=csv >"$OUT/gpus.csv" 2>&1 || true
nvidia-smi --query-compute-apps=gpu_bus_id,pid,process_name,used_memory --format=csv >"$OUT/compute-apps-start.csv" 2>&1 || true
nvidia-smi --query-gpu=index,timestamp,energy.consumption,power.draw --format=csv >"$OUT/smi-energy-start.csv" 2>&1 ||
  log "nvidia-smi cannot report energy.consumption here (see smi-energy-start.csv)"

# ---- helper programs (written into OUTDIR so the run is self-describing) ------------------------
cat >"$TOOLS/nvml_poll.py" <<'PY'
"""Read-only NVML poller: total energy counter (mJ) and power (mW) of every GPU every 200 ms."""
import ctypes, os, sys, time
out_path, stop_path, cap_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
nvml = ctypes.CDLL("libnvidia-ml.so.1")
if nvml.nvmlInit_v2() != 0:
    sys.exit("nvmlInit_v2 failed")
count = ctypes.c_uint()
nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
handles = []
for i in range(count.value):
    h = ctypes.c_void_p()
    nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h))
    handles.append(h)
end = time.time() + cap_s
with open(out_path, "w") as out:
    out.write("wall_ms,index,energy_mj,power_mw\n")
    while True:
        # Read first, then check: the last row comes after the stop request (after kwtop's last sample).
        stop = os.path.exists(stop_path) or time.time() > end
        for i, h in enumerate(handles):
            e, p = ctypes.c_ulonglong(), ctypes.c_uint()
            t0 = time.time()
            re = nvml.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(e))
            rp = nvml.nvmlDeviceGetPowerUsage(h, ctypes.byref(p))
            t1 = time.time()
            out.write("%d,%d,%s,%s\n" % (round((t0 + t1) * 500), i, e.value if re == 0 else "", p.value if rp == 0 else ""))
        out.flush()
        if stop:
            break
        time.sleep(0.2)
nvml.nvmlShutdown()
PY
cat >"$TOOLS/busy.py" <<'PY'
"""Keeps the GPU busy with large bf16 matmuls for argv[1] seconds (after a short warm-up)."""
import sys, time, torch
seconds = float(sys.argv[1])
n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
c = a @ b
torch.cuda.synchronize()
start = time.time()
iters = 0
while time.time() - start < seconds:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    iters += 20
el = time.time() - start
print("busy: %d matmuls of %dx%d in %.1f s, %.0f TFLOP/s" % (iters, n, n, el, iters * 2 * n**3 / el / 1e12), flush=True)
PY
cat >"$TOOLS/holder.py" <<'PY'
"""Allocates argv[1] GiB on the GPU, touches it once, says so in argv[2], then sleeps (an idle holder)."""
import os, sys, time, torch
gib, ready, cap_s = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
x = torch.empty(int(gib * (1 << 30)), dtype=torch.uint8, device="cuda")
x.zero_()
torch.cuda.synchronize()
with open(ready, "w") as f:
    f.write("%d\n" % os.getpid())
time.sleep(cap_s)
PY

# ---- 2. independent NVML poller, idle baseline --------------------------------------------------
rm -f "$TOOLS/stop"
"$PY" "$TOOLS/nvml_poll.py" "$OUT/nvml-poll.csv" "$TOOLS/stop" 280 2>>"$OUT/log.txt" &
poller=$!
started+=("$poller")
log "measuring GPU $GPU idle power for 5 s"
sleep 5
idle_w="$("$PY" - "$OUT/nvml-poll.csv" "$GPU" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["index"] == sys.argv[2] and r["power_mw"]]
print("%.1f" % (statistics.median(float(r["power_mw"]) for r in rows) / 1000.0) if rows else "")
PY
)"
[ -n "$idle_w" ] || die "the NVML poller read no power for GPU $GPU (see log.txt)"
log "idle power ${idle_w} W (median over 5 s, before any workload)"
cat >"$OUT/kwtop.toml" <<EOF
# Written by scripts/gpu-check.sh.
[sampling]
interval = "1s"

[attribution]
# Measured: median NVML power of GPU $GPU over 5 s with no workload started by this script.
gpu_idle_w = $idle_w

[idle_holder]
after = "${IDLE_AFTER_S}s"
EOF

# ---- 3. kwtop record across the window ----------------------------------------------------------
"$KWTOP" --config "$OUT/kwtop.toml" record -o "$OUT/recording.jsonl" --interval 1s \
  --duration "$((BUSY_S + 150))s" 2>>"$OUT/kwtop-record.stderr" &
recorder=$!
started+=("$recorder")
sleep 2

# ---- 4. idle holder, then the busy workload -----------------------------------------------------
CUDA_VISIBLE_DEVICES="$GPU" "$PY" "$TOOLS/holder.py" "$HOLD_GIB" "$TOOLS/holder.ready" 280 \
  >>"$OUT/holder.log" 2>&1 &
holder=$!
started+=("$holder")
for _ in $(seq 1 120); do
  [ -s "$TOOLS/holder.ready" ] && break
  kill -0 "$holder" 2>/dev/null || die "the idle holder exited early (see holder.log)"
  sleep 0.5
done
[ -s "$TOOLS/holder.ready" ] || die "the idle holder did not allocate within 60 s"
log "idle holder pid $holder holds ${HOLD_GIB} GiB"
holder_start_ms="$(date +%s%3N)"

CUDA_VISIBLE_DEVICES="$GPU" "$PY" "$TOOLS/busy.py" "$BUSY_S" >>"$OUT/busy.log" 2>&1 &
busy=$!
started+=("$busy")
busy_start_ms="$(date +%s%3N)"
log "busy pid $busy: matmuls for ${BUSY_S} s"

# ---- 5. a snapshot in the middle ----------------------------------------------------------------
sleep "$((BUSY_S / 2))"
nvidia-smi >"$OUT/nvidia-smi-mid.txt" 2>&1 || true
"$KWTOP" --config "$OUT/kwtop.toml" snapshot --json --interval 2s >"$OUT/snapshot-mid.json" \
  2>>"$OUT/log.txt" || log "kwtop snapshot failed (exit $?)"

# ---- 6. stop in order: busy ends, recorder, holder, poller --------------------------------------
busy_rc=0
wait "$busy" || busy_rc=$?
busy_end_ms="$(date +%s%3N)"
[ "$busy_rc" -eq 0 ] || log "busy workload exited with $busy_rc (see busy.log)"
sleep 3
kill -TERM "$recorder" 2>/dev/null || true
wait "$recorder" || log "kwtop record exited with $? (see kwtop-record.stderr)"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
touch "$TOOLS/stop"
wait "$poller" || true
started=()
nvidia-smi --query-gpu=index,timestamp,energy.consumption,power.draw --format=csv >"$OUT/smi-energy-end.csv" 2>&1 || true
nvidia-smi >"$OUT/nvidia-smi-end.txt" 2>&1 || true

# ---- 7. report and analysis ---------------------------------------------------------------------
"$KWTOP" --config "$OUT/kwtop.toml" report "$OUT/recording.jsonl" --json >"$OUT/report.json"
"$KWTOP" --config "$OUT/kwtop.toml" report "$OUT/recording.jsonl" >"$OUT/report.txt" || true
cat >"$OUT/params.json" <<EOF
{
  "synthetic": false,
  "gpu_index": $GPU,
  "busy_pid": $busy,
  "holder_pid": $holder,
  "gpu_idle_w": $idle_w,
  "idle_after_s": $IDLE_AFTER_S,
  "hold_gib": $HOLD_GIB,
  "busy_seconds": $BUSY_S,
  "holder_start_ms": $holder_start_ms,
  "busy_start_ms": $busy_start_ms,
  "busy_end_ms": $busy_end_ms
}
EOF
log "analysis:"
rc=0
"$PY" "$here/gpu-check-analyze.py" "$OUT" | tee "$OUT/analysis.txt" || rc=$?
log "done: results in $OUT"
exit "$rc"
