#!/usr/bin/env bash
# Overhead of the live monitor next to htop, at several process counts.
#
# For each load (a target number of processes on the host, reached by starting idle `sleep`
# processes), kwtop and htop run side by side in one tmux server (two 120x40 windows) at a 1 s
# refresh. After WARMUP seconds, DURATION seconds are measured:
#   CPU       on-CPU nanoseconds of all the program's threads, from /proc/PID/task/*/schedstat,
#             reported as milliseconds per minute;
#   peak RSS  VmHWM at the end (KiB), with both binaries in the page cache, and RssAnon (heap,
#             stacks and the relocated pointers of a position-independent binary, without code);
#   bytes     growth of a tmux pipe-pane capture of its terminal over the window;
#   first     bytes written in the first 0.9 s after it starts (its first frame: both are started
#             only once the capture is attached), and the CPU it used until then.
# Then the ratios kwtop/htop. Targets (issue 12): CPU <= 0.5x, RSS <= 1x, bytes <= 0.7x,
# first frame <= 0.5x.
#
# Usage: scripts/overhead.sh [--pidns] [--bin PATH] [DURATION_S] [LOAD ...]
#   DURATION_S  seconds measured per load (default 60; about 4.5 min for the three default loads)
#   LOAD        target process counts (default: 70 370 3000); a host already above a target is
#               measured as it is, and the table says how many processes there were
#   --pidns     run everything in a fresh PID namespace (needs root): the loads are exact and
#               nothing else on the host changes them (kernel threads are not visible there)
#   --bin PATH  measure this kwtop binary instead of building this checkout with --release
#   WARMUP=S    seconds before each window (default 10)
# Needs tmux and htop.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SELF="$ROOT/scripts/overhead.sh"
PIDNS=0
BIN=""
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --pidns) PIDNS=1 ;;
        --in-pidns) PIDNS=2 ;;
        --bin) BIN="$2"; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
DURATION="${ARGS[0]:-60}"
LOADS=("${ARGS[@]:1}")
[ ${#LOADS[@]} -gt 0 ] || LOADS=(70 370 3000)
WARMUP="${WARMUP:-10}"
command -v tmux >/dev/null || { echo "overhead.sh: needs tmux" >&2; exit 2; }
command -v htop >/dev/null || { echo "overhead.sh: needs htop" >&2; exit 2; }

if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin kwtop)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kwtop"
fi
BIN="$(realpath "$BIN")"

if [ "$PIDNS" = 1 ]; then
    # Everything below runs again inside the new namespace, with its own /proc.
    exec unshare --pid --fork --mount-proc bash "$SELF" --in-pidns --bin "$BIN" "$DURATION" "${LOADS[@]}"
fi

# Both programs' files wholly in the page cache, as on a machine where they have run before: the
# kernel maps code up to 64 KiB around each page touched, but only pages already cached, so peak RSS
# depends on what was read before. With everything cached it is the largest and stable between runs.
for f in "$BIN" "$(command -v htop)"; do cat "$f" >/dev/null; done

# The release layout (build.rs) keeps the live monitor's code together only while
# build/symbol-order.txt names the functions this binary has: say how many it still finds.
if command -v nm >/dev/null && [ -f "$ROOT/build/symbol-order.txt" ]; then
    listed="$(grep -vc '^#' "$ROOT/build/symbol-order.txt" || true)"
    found="$(nm "$BIN" 2>/dev/null | awk '{ print $NF }' | sort -u |
        comm -12 - <(grep -v '^#' "$ROOT/build/symbol-order.txt" | sort -u) | wc -l)"
    echo "symbol order: $found of $listed listed functions are in $BIN (rerun scripts/symbol-order.sh when few are)"
fi

WORK="$(mktemp -d)"
SOCK="kwtop-overhead-$$"
T=(tmux -L "$SOCK" -f /dev/null)
SLEEPERS=()
KW_PID=""
stop_monitors() {
    "${T[@]}" kill-server 2>/dev/null || true
    # kwtop writes its session summary into $WORK as it exits on the hang-up: let it finish.
    for _ in $(seq 50); do
        [ -n "$KW_PID" ] && kill -0 "$KW_PID" 2>/dev/null || break
        sleep 0.1
    done
    KW_PID=""
}
stop_sleepers() {
    [ ${#SLEEPERS[@]} -gt 0 ] && kill "${SLEEPERS[@]}" 2>/dev/null
    wait "${SLEEPERS[@]}" 2>/dev/null || true
    SLEEPERS=()
}
cleanup() {
    stop_monitors
    stop_sleepers
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/kwtop.toml" <<EOF
[sampling]
interval = "1s"
[export]
dir = "$WORK/summaries"
EOF

nprocs() { local n=0 d; for d in /proc/[0-9]*; do n=$((n + 1)); done; echo "$n"; }
# On-CPU nanoseconds of every thread of PID (schedstat field 1).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# Starts the two monitors (each waits for its capture before it execs), counts their first 0.9 s.
start_monitors() {
    "${T[@]}" new-session -d -s ovh -x 120 -y 40 -n kwtop \
        "tmux -L $SOCK wait-for go-kw; exec $BIN --config $WORK/kwtop.toml"
    "${T[@]}" new-window -d -t ovh -n htop "tmux -L $SOCK wait-for go-ht; exec htop -d 10"
    : >"$WORK/kwtop.tty"
    : >"$WORK/htop.tty"
    "${T[@]}" pipe-pane -t ovh:kwtop -o "cat >>$WORK/kwtop.tty"
    "${T[@]}" pipe-pane -t ovh:htop -o "cat >>$WORK/htop.tty"
    KW_PID="$("${T[@]}" display -p -t ovh:kwtop '#{pane_pid}')"
    HT_PID="$("${T[@]}" display -p -t ovh:htop '#{pane_pid}')"
    "${T[@]}" wait-for -S go-kw
    "${T[@]}" wait-for -S go-ht
    sleep 0.9
    KW_FIRST_CPU="$(cpu_ns "$KW_PID")"; HT_FIRST_CPU="$(cpu_ns "$HT_PID")"
    KW_FIRST="$(bytes "$WORK/kwtop.tty")"; HT_FIRST="$(bytes "$WORK/htop.tty")"
}

ROWS=()
for LOAD in "${LOADS[@]}"; do
    # Two monitors, the tmux server and the two waiting shells come on top of what runs now.
    need=$((LOAD - $(nprocs) - 3))
    for _ in $(seq "$need"); do
        sleep 100000 &
        SLEEPERS+=($!)
    done
    start_monitors
    sleep "$WARMUP"
    kc0="$(cpu_ns "$KW_PID")"; hc0="$(cpu_ns "$HT_PID")"
    kb0="$(bytes "$WORK/kwtop.tty")"; hb0="$(bytes "$WORK/htop.tty")"
    sleep "$DURATION"
    kc1="$(cpu_ns "$KW_PID")"; hc1="$(cpu_ns "$HT_PID")"
    kb1="$(bytes "$WORK/kwtop.tty")"; hb1="$(bytes "$WORK/htop.tty")"
    n_now="$(nprocs)"
    k_hwm="$(status_kib "$KW_PID" VmHWM)"; h_hwm="$(status_kib "$HT_PID" VmHWM)"
    k_anon="$(status_kib "$KW_PID" RssAnon)"; h_anon="$(status_kib "$HT_PID" RssAnon)"
    stop_monitors
    stop_sleepers
    per_min() { awk -v d="$1" -v s="$DURATION" 'BEGIN { printf "%.1f", d / 1e6 * 60 / s }'; }
    ms() { awk -v d="$1" 'BEGIN { printf "%.1f", d / 1e6 }'; }
    kcpu="$(per_min $((kc1 - kc0)))"; hcpu="$(per_min $((hc1 - hc0)))"
    kbytes=$((kb1 - kb0)); hbytes=$((hb1 - hb0))
    printf '\n%s processes (target %s), %s s after %s s warm-up, 1 s refresh, 120x40\n' \
        "$n_now" "$LOAD" "$DURATION" "$WARMUP"
    printf '%-6s %12s %13s %13s %14s %12s %13s\n' "" "CPU ms/min" "peak RSS KiB" "anon RSS KiB" \
        "terminal B" "first B" "first CPU ms"
    printf '%-6s %12s %13s %13s %14s %12s %13s\n' kwtop "$kcpu" "$k_hwm" "$k_anon" "$kbytes" \
        "$KW_FIRST" "$(ms "$KW_FIRST_CPU")"
    printf '%-6s %12s %13s %13s %14s %12s %13s\n' htop "$hcpu" "$h_hwm" "$h_anon" "$hbytes" \
        "$HT_FIRST" "$(ms "$HT_FIRST_CPU")"
    row="$(printf '%-6s %6s %9s %9s %9s %9s %11s' "$n_now" "$LOAD" "$(ratio "$kcpu" "$hcpu")" \
        "$(ratio "$k_hwm" "$h_hwm")" "$(ratio "$kbytes" "$hbytes")" "$(ratio "$KW_FIRST" "$HT_FIRST")" \
        "$(ratio "$KW_FIRST_CPU" "$HT_FIRST_CPU")")"
    ROWS+=("$row")
done

printf '\nkwtop / htop (targets: CPU <= 0.5, RSS <= 1, bytes <= 0.7, first frame <= 0.5)%s\n' \
    "$([ "$PIDNS" = 2 ] && echo ', in a PID namespace')"
printf '%-6s %6s %9s %9s %9s %9s %11s\n' procs target CPU RSS bytes "first B" "first CPU"
for r in "${ROWS[@]}"; do echo "$r"; done
