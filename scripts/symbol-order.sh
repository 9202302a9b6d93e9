#!/usr/bin/env bash
# Regenerates build/symbol-order.txt: the functions the live monitor runs, which release builds
# link next to each other (build.rs passes the file to the linker). kwtop's resident memory is
# mostly its code pages, and the kernel maps code 64 KiB at a time around each page touched
# (fault-around): with the ~1,000 functions the monitor runs scattered over 3.8 MB of code, 3.1 MB
# of it was resident; packed together, about 1 MB. Functions not listed keep the linker's order,
# and a stale list only costs memory (names the build no longer has are skipped), so rerun this
# after large changes, a Rust or dependency upgrade or a change of features (symbol names carry a
# hash of those).
#
#   [LOAD=N] scripts/symbol-order.sh [SECONDS]   (default 25 per run, 350 idle processes)
#
# Profiles, under valgrind's callgrind in a 120x40 tmux window on a host with LOAD more idle
# processes and some short-lived ones, each with a few keys pressed (sort, detail, help, scrolling):
# the live monitor as most start it (no config file, no NVIDIA library), the same with
# `--config FILE` setting every key, then with that file found in XDG_CONFIG_HOME instead, then
# `--config FILE` with the fake NVML library playing two GPUs (fake-nvml/fixtures). Each profile
# is dumped in parts: start-up (up to `release_startup_pages`, which gives its pages back), the
# screen running, the keys, the screen running again, the exit. The list puts what the running
# screen needs first (a plain run's, then what a config file and GPUs add), then what the keys,
# the exit and start-up need: the code a session keeps resident then fills as few 64 KiB windows
# as it can, and what it ran only once lies in windows it gives back.
# Needs tmux, valgrind (callgrind_control), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-25}
for tool in tmux valgrind callgrind_control python3 nm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "symbol-order: needs $tool" >&2; exit 1; }
done
cargo build --release --quiet --bin kwtop
cargo build --release --quiet -p fake-nvml --lib
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$(realpath "$target/release/kwtop")
[ -f "$target/release/libfake_nvml.so" ] || { echo "symbol-order: no $target/release/libfake_nvml.so" >&2; exit 1; }
work=$(mktemp -d)
load=()
trap 'tmux -L kwtop-order kill-server 2>/dev/null || true; kill ${load[@]+"${load[@]}"} 2>/dev/null || true; rm -rf "$work"' EXIT

# The configs set every key of config.example.toml (its commented defaults uncommented; reading
# each section runs code of its own: left out, 0.9 MB more code was resident with a full config),
# with the summaries in the temp dir, the CPU model looked up (no tdp_w) and, for the GPU run, the
# fake NVML library.
full_config() { # NVML_LIBRARY (empty: the system's)
  python3 - "$1" "$work/out" config.example.toml <<'PY'
import re, sys
nvml, out, example = sys.argv[1], sys.argv[2], sys.argv[3]
seen, section = set(), None
for line in open(example):
    m = re.match(r"^\[([a-z_.]+)\]", line)
    if m:
        section = m.group(1)
        print(line, end="")
        continue
    m = re.match(r"^# ?([a-z_]+) = (.+)$", line) or re.match(r"^([a-z_]+) = (.+)$", line)
    if not m or (section, m.group(1)) in seen:
        continue
    key, value = m.groups()
    seen.add((section, key))
    if key == "tdp_w" or (key == "nvml_library" and not nvml):
        continue
    value = {"nvml_library": f'"{nvml}"', "dir": f'"{out}"'}.get(key, value)
    print(f"{key} = {value}")
PY
}
mkdir -p "$work/bare" "$work/plain/kwtop" "$work/gpu/kwtop"
full_config "" >"$work/plain/kwtop/config.toml"
full_config "$target/release/libfake_nvml.so" >"$work/gpu/kwtop/config.toml"
[ "$(grep -c ' = ' "$work/gpu/kwtop/config.toml")" -ge 20 ] &&
  "$bin" --config "$work/gpu/kwtop/config.toml" snapshot --interval 10ms >/dev/null ||
  { echo "symbol-order: the generated config does not load" >&2; exit 1; }

profile() { # NAME ARGS [ENV...]
  local name=$1 args=$2 pid; shift 2
  # Four dumps before the last: start-up (up to the release of its pages), the screen running,
  # the keys, the screen running again; the last one has the exit.
  # shellcheck disable=SC2086 # ARGS is a word list on purpose
  tmux -L kwtop-order new-session -d -x 120 -y 40 \
    env XDG_CONFIG_HOME="$work/$name" XDG_DATA_HOME="$work/data" "$@" \
    valgrind --tool=callgrind --demangle=no --dump-after='*release_startup_pages*' \
    --callgrind-out-file="$work/$name.cg" "$bin" $args
  pid=$(tmux -L kwtop-order list-panes -F '#{pane_pid}')
  sleep "$((secs / 2))"
  callgrind_control -d "$pid" >/dev/null
  for k in s s d Escape '?' Escape Down Down PageDown Home; do tmux -L kwtop-order send-keys "$k"; sleep 1; done
  callgrind_control -d "$pid" >/dev/null
  sleep "$((secs / 2))"
  callgrind_control -d "$pid" >/dev/null
  tmux -L kwtop-order send-keys q
  for _ in $(seq 60); do [ -s "$work/$name.cg" ] && ! tmux -L kwtop-order has-session 2>/dev/null && break; sleep 1; done
  tmux -L kwtop-order kill-server 2>/dev/null || true
  # A profile that did not finish must not leave a list without it (build.rs would link by it).
  for part in 1 2 3 4 ""; do
    [ -s "$work/$name.cg${part:+.$part}" ] ||
      { echo "symbol-order: the $name profile did not finish (no dump ${part:-final})" >&2; exit 1; }
  done
}
# `kwtop` as most start it, then `kwtop --config FILE` before the same file found without the
# option: parsing an option with a value runs code of its own (0.9 MB more resident code when it
# was left out of the list; ~100 KiB while it came only with the GPU run).
# Under load: LOAD idle processes (default 350) and a few short-lived ones a second, so that what a
# busier host runs (longer sorts, table growth, processes exiting) is in the list; left out, ~150 KiB
# more code was resident at ~370 processes than at ~70.
for _ in $(seq "${LOAD:-350}"); do sleep 3600 & load+=($!); done
(while :; do sleep 0.2 & sleep 0.3; done) & load+=($!)
profile bare ""
profile plain "--config $work/plain/kwtop/config.toml"
profile xdg "" XDG_CONFIG_HOME="$work/plain"
profile gpu "--config $work/gpu/kwtop/config.toml" \
  KWTOP_FAKE_NVML_FIXTURE="$PWD/fake-nvml/fixtures/h100-busy-and-idle-holder.json"

python3 - "$bin" "$work"/{bare,plain,xdg,gpu} >"$work/order.txt" <<'PY'
import re, subprocess, sys
binary, profiles = sys.argv[1], sys.argv[2:]

def self_cost(path):
    """Self cost of every function of the kwtop binary in one callgrind dump."""
    cost, objs, names, ob, fn, after_call = {}, {}, {}, None, None, False
    for line in open(path, errors="replace"):
        m = re.match(r"^(ob|fn|cob|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, idx, name = m.groups()
            table = objs if kind in ("ob", "cob") else names
            if name:
                table[idx] = name
            if kind == "ob":
                ob = objs[idx]
            elif kind == "fn":
                fn = names[idx] if ob == binary else None
            continue
        if line.startswith("calls="):
            # The next line is the inclusive cost of a call, not this function's own.
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if fn and not after_call and len(parts) >= 2:
                cost[fn] = cost.get(fn, 0) + int(parts[1])
            after_call = False
    return cost

# The dumps of each profile by what they are: start-up runs once and its pages are given back
# (sources::resident), so what matters is that the code the screen runs afterwards lies in as few
# 64 KiB windows as it can. Classes in the order the list puts them: the screen running (before
# and after the keys), the keys, the exit, start-up.
STEADY, KEYS, EXIT, START = range(4)
dumps = {".1": START, ".2": STEADY, ".3": KEYS, ".4": STEADY, "": EXIT}
symbols = set()
for line in subprocess.run(["nm", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        symbols.add(parts[2])
# Each function goes where it is first needed: its earliest class, then its earliest profile
# (a function only a config file or a GPU needs, among the ones every run needs, would pull its
# window into every run); hottest first within each.
tier, total = {}, {}
for p, base in enumerate(profiles):
    for suffix, cls in dumps.items():
        for f, c in self_cost(base + ".cg" + suffix).items():
            total[f] = total.get(f, 0) + c
            tier[f] = min(tier.get(f, (cls, p)), (cls, p))
order = sorted((f for f in total if f in symbols), key=lambda f: (tier[f], -total[f]))
# First: the C start-up files' functions (they run in every process but are not in the profiles;
# left to the linker they sit behind the ordered code and cost a window of their own), and the
# code that gives start-up's pages back, which runs on after they are gone: in the first window,
# with the screen's hottest code, it brings back no window of its own.
crt = ["_start", "deregister_tm_clones", "register_tm_clones", "__do_global_dtors_aux", "frame_dummy"]
release = [f for f in order if "8resident" in f]
first = [f for f in crt if f in symbols] + release
order = first + [f for f in order if f not in first]
sizes = [sum(1 for f in order if tier.get(f, (None,))[0] == c) for c in range(4)]
print("symbol-order: functions for the screen running, the keys, the exit, start-up:", sizes, file=sys.stderr)
print("# Functions the live monitor runs: those the running screen needs (without a config file or")
print("# GPU, then with `--config FILE`, a config file found by itself, GPUs), then those keys, the")
print("# exit and start-up need; hottest first in each (scripts/symbol-order.sh; build.rs).")
print("\n".join(order))
PY
mv "$work/order.txt" build/symbol-order.txt
echo "symbol-order: $(grep -vc '^#' build/symbol-order.txt) functions in build/symbol-order.txt"
