#!/usr/bin/env bash
# Overhead of the live monitor next to htop: both run side by side in one tmux session (two
# 120x40 windows), refreshing every second for DURATION seconds. Prints, for each: CPU seconds
# (utime+stime from /proc/PID/stat), peak RSS (VmHWM) and bytes written to its terminal (counted
# with tmux pipe-pane). Target: kwtop at or below htop on all three.
#
# Usage: scripts/overhead.sh [DURATION_S]   (default 60; needs tmux and htop; builds --release)
set -euo pipefail

DURATION="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
command -v tmux >/dev/null || { echo "overhead.sh: needs tmux" >&2; exit 2; }
command -v htop >/dev/null || { echo "overhead.sh: needs htop" >&2; exit 2; }

cargo build --release --quiet --bin kwtop
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kwtop"

WORK="$(mktemp -d)"
SOCK="kwtop-overhead-$$"
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    # kwtop writes its session summary into $WORK as it exits on the hang-up: let it finish.
    for _ in $(seq 50); do
        [ -n "${KW_PID:-}" ] && kill -0 "$KW_PID" 2>/dev/null || break
        sleep 0.1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/kwtop.toml" <<EOF
[sampling]
interval = "1s"
[export]
dir = "$WORK/summaries"
EOF

T="tmux -L $SOCK -f /dev/null"
$T new-session -d -s ovh -x 120 -y 40 -n kwtop "exec $BIN --config $WORK/kwtop.toml"
$T new-window -d -t ovh -n htop "exec htop -d 10"
$T pipe-pane -t ovh:kwtop -o "cat >$WORK/kwtop.tty"
$T pipe-pane -t ovh:htop -o "cat >$WORK/htop.tty"
# Both start after pipe-pane is attached: redraw once so the first frame is counted too.
sleep 0.5
$T send-keys -t ovh:htop C-l
KW_PID="$($T display -p -t ovh:kwtop '#{pane_pid}')"
HT_PID="$($T display -p -t ovh:htop '#{pane_pid}')"

cpu_s() { # utime + stime of PID in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
# Anonymous (heap, stacks) resident memory: what the program allocated, without its code pages.
anon_kib() { awk '/^RssAnon/ { print $2 }' "/proc/$1/status"; }

sleep "$DURATION"

KW_CPU="$(cpu_s "$KW_PID")"; HT_CPU="$(cpu_s "$HT_PID")"
KW_RSS="$(hwm_kib "$KW_PID")"; HT_RSS="$(hwm_kib "$HT_PID")"
KW_ANON="$(anon_kib "$KW_PID")"; HT_ANON="$(anon_kib "$HT_PID")"
$T pipe-pane -t ovh:kwtop
$T pipe-pane -t ovh:htop
sleep 0.2
KW_BYTES="$(wc -c <"$WORK/kwtop.tty")"; HT_BYTES="$(wc -c <"$WORK/htop.tty")"

printf 'overhead over %ss at a 1 s refresh, 120x40 terminals (tmux), %s processes on this host\n' \
    "$DURATION" "$(ls -d /proc/[0-9]* | wc -l)"
printf '%-8s %12s %14s %14s %16s\n' "" "CPU seconds" "peak RSS KiB" "anon RSS KiB" "terminal bytes"
printf '%-8s %12s %14s %14s %16s\n' kwtop "$KW_CPU" "$KW_RSS" "$KW_ANON" "$KW_BYTES"
printf '%-8s %12s %14s %14s %16s\n' htop "$HT_CPU" "$HT_RSS" "$HT_ANON" "$HT_BYTES"
