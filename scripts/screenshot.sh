#!/usr/bin/env bash
# Regenerates the README's picture, docs/screen.svg: the live monitor at the end of a replayed
# GPU training (examples/gen_training_recording.rs: two H100s, a training job, an idle Jupyter
# kernel), in a 120x40 terminal with colours, converted by scripts/ansi2svg.py.
#
#   scripts/screenshot.sh [OUT.svg]        (default docs/screen.svg)
#
# Needs cargo, tmux and python3. KWTOP_BIN=path uses that kwtop instead of building one (the
# generator is always built: it is an example). Nothing outside a temp dir is touched but OUT:
# the config it runs with only points the export dir there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screen.svg}
cols=120
rows=40
# Seconds of recording: the default 10-minute chart window, full; past `[idle_holder] after` (5 min).
seconds=600

for tool in tmux python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "screenshot: needs $tool" >&2; exit 1; }
done

target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
if [ -n "${KWTOP_BIN:-}" ]; then
  cargo build --quiet --example gen_training_recording
  bin=$KWTOP_BIN
else
  # One invocation, one feature set: the example's dev-dependencies do not rebuild kwtop twice.
  cargo build --quiet --bin kwtop --example gen_training_recording
  bin=$target/debug/kwtop
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d)
socket="kwtop-screenshot-$$"
cleanup() {
  tmux -L "$socket" kill-server >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$target/debug/examples/gen_training_recording" "$tmp/gpu-training.jsonl" "$seconds"
cat >"$tmp/kwtop.toml" <<EOF
[sources]
nvml = false
[export]
dir = "$tmp/export"
EOF

# The replay runs in the temp dir, so a notice would name the recording without a temp path; at 200x
# the 600 s take about 3 s.
tmux -L "$socket" -f /dev/null new-session -d -x "$cols" -y "$rows" -s shot \
  "cd '$tmp' && exec env -u NO_COLOR TERM=xterm-256color COLORTERM=truecolor '$bin' replay --config kwtop.toml gpu-training.jsonl --speed 200"

capture() { tmux -L "$socket" capture-pane -p -t shot "$@"; }
# The end: the header's session clock shows the whole recording (the end-of-recording notice only
# goes to the help overlay), and the screen no longer changes.
clock=$(printf '%02d:%02d:%02d' $((seconds / 3600)) $((seconds / 60 % 60)) $((seconds % 60)))
deadline=$((SECONDS + 120))
last=""
while :; do
  screen=$(capture -e -N 2>/dev/null || true)
  if [ -n "$last" ] && [ "$screen" = "$last" ] && [[ ${screen%%$'\n'*} == *" $clock "* ]]; then
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "screenshot: the replay did not reach $clock in 120 s; the screen:" >&2
    capture >&2 || true
    exit 1
  fi
  last=$screen
  sleep 0.5
done
printf '%s\n' "$screen" >"$tmp/screen.ans"
tmux -L "$socket" send-keys -t shot q

mkdir -p "$(dirname "$out")"
python3 scripts/ansi2svg.py --cols "$cols" --rows "$rows" --title "kwtop replay gpu-training.jsonl" \
  "$tmp/screen.ans" -o "$out"
echo "screenshot: wrote $out ($(wc -c <"$out") bytes)"
