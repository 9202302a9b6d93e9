#!/usr/bin/env python3
"""Check the results folder written by scripts/gpu-check.sh (python3 standard library only).

    python3 scripts/gpu-check-analyze.py OUTDIR

Reads OUTDIR/params.json, recording.jsonl (kwtop record), report.json (kwtop report --json),
snapshot-mid.json (kwtop snapshot --json), nvml-poll.csv (NVML's total energy counter read by an
independent poller) and, when present, smi-energy-start.csv / smi-energy-end.csv (nvidia-smi).

Prints, and writes to OUTDIR/analysis.json:
  1. energy   kwtop's device energy over the recording vs the NVML counter's advance over the same
              window (the independent poller, interpolated at kwtop's first and last sample): < 1 %.
  2. busy     the busy process's share of the dynamic GPU energy (an independent replay of the
              recording with the static/dynamic split of DESIGN section 4): > 80 %; and kwtop's
              energy for it agrees with the replay within 1 %.
  3. holder   the sleeping memory holder is flagged as an idle holder and charged GPU energy.
  4. conservation   energy = sum(processes) + idle + unattributed, per device, in report.json and
              snapshot-mid.json.
Exit status 0 when every check passes, 1 when one fails, 2 when the folder is incomplete.
"""

import csv
import json
import math
import os
import sys

ENERGY_TOLERANCE_PCT = 1.0
BUSY_MIN_SHARE = 0.80


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_recording(path):
    """Header and samples of a kwtop.recording/1 or /2 file. In version 2 a delta sample lists only
    what changed since the previous sample; its devices are rebuilt here from the previous sample's
    (`dev`: per position, the fields set and unset), so every sample returned has all its devices.
    Processes are not rebuilt: this analysis reads only devices."""
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()]
    if not lines:
        raise ValueError(f"{path} is empty")
    header = json.loads(lines[0])
    samples = []
    for n, ln in enumerate(lines[1:], start=2):
        try:
            s = json.loads(ln)
        except json.JSONDecodeError:
            # A recorder killed mid-line loses at most its last line.
            print(f"note: {path} line {n} is not JSON; using the {len(samples)} samples before it")
            break
        delta = s.get("delta")
        if delta is not None:
            if not samples:
                raise ValueError(f"{path} line {n}: a delta sample before any full sample")
            devices = [dict(d) for d in samples[-1]["devices"]]
            for patch in delta.get("dev", []):
                d = devices[patch["i"]]
                for k in patch.get("unset", []):
                    d.pop(k, None)
                d.update(patch.get("set", {}))
            s["devices"] = devices
        samples.append(s)
    return header, samples


def device_in(sample, dev_id):
    for d in sample.get("devices", []):
        if d.get("id") == dev_id:
            return d
    return None


def read_poll(path, index):
    """(wall_ms, energy_mj) rows of one GPU from the independent NVML poller, in time order."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r.get("index") != str(index) or not r.get("energy_mj"):
                continue
            rows.append((float(r["wall_ms"]), float(r["energy_mj"])))
    rows.sort()
    return rows


def interpolate(rows, t):
    """Counter value at wall time t (ms), linear between the poller's readings; None outside them."""
    if not rows or t < rows[0][0] or t > rows[-1][0]:
        return None
    for (t0, e0), (t1, e1) in zip(rows, rows[1:]):
        if t0 <= t <= t1:
            return e0 if t1 == t0 else e0 + (e1 - e0) * (t - t0) / (t1 - t0)
    return rows[-1][1]


def read_smi_energy(path, index):
    """Joules from an `nvidia-smi --query-gpu=index,timestamp,energy.consumption,power.draw
    --format=csv` file (units read from the header or the value: J or mJ)."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return None
    head = [h.strip() for h in rows[0]]
    col = next((i for i, h in enumerate(head) if h.startswith("energy.consumption")), None)
    if col is None:
        return None
    for r in rows[1:]:
        if r and r[0].strip() == str(index) and len(r) > col:
            text = r[col].strip()
            unit = "mJ" if ("[mJ]" in head[col] or text.endswith("mJ")) else "J"
            try:
                value = float(text.split()[0])
            except (ValueError, IndexError):
                return None  # "[N/A]" or "[Not Supported]"
            return value / 1000.0 if unit == "mJ" else value
    return None


def interval_energy(prev, cur, dt):
    """Device energy over one interval, joules, as kwtop computes it (counter, else trapezoid)."""
    a, b = prev.get("energy"), cur.get("energy")
    if a and b:
        if b["value_uj"] >= a["value_uj"]:
            return (b["value_uj"] - a["value_uj"]) * 1e-6
        wrap = b.get("wrap_uj")
        if wrap is not None and a["value_uj"] <= wrap:
            return (wrap - a["value_uj"] + b["value_uj"]) * 1e-6
        return None
    pa, pb = prev.get("power_w"), cur.get("power_w")
    if pa is not None and pb is not None:
        return (pa + pb) / 2.0 * dt
    return None


def replay(samples, dev_id, idle_w):
    """Independent GPU split (DESIGN section 4): static = min(P_idle * dt, E) by memory among the
    holders, dynamic = the rest by SM share (by memory when all shares are 0).
    Returns joules: total, static, dynamic, per pid (static + dynamic), dynamic per pid."""
    total = static_total = dynamic_total = 0.0
    per_pid, dyn_pid = {}, {}
    for prev_s, cur_s in zip(samples, samples[1:]):
        prev, cur = device_in(prev_s, dev_id), device_in(cur_s, dev_id)
        dt = cur_s["t"] - prev_s["t"]
        if prev is None or cur is None or dt <= 0:
            continue
        e = interval_energy(prev, cur, dt)
        if e is None:
            continue
        static = min(max(idle_w, 0.0) * dt, e)
        dynamic = e - static
        total += e
        static_total += static
        dynamic_total += dynamic
        holders = {}
        for p in cur.get("gpu_processes", []):
            h = holders.setdefault(p["pid"], {"mem": None, "sm": None})
            for k, src in (("mem", "used_mem_bytes"), ("sm", "sm_util_pct")):
                v = p.get(src)
                if v is not None:
                    h[k] = v if h[k] is None else max(h[k], v)
        if not holders:
            continue
        pids = list(holders)
        util = [max(holders[p]["sm"] or 0.0, 0.0) for p in pids]
        mem = [float(holders[p]["mem"] or 0) for p in pids]
        mem_known = all(holders[p]["mem"] is not None for p in pids) and sum(mem) > 0
        static_w = mem if mem_known else [1.0] * len(pids)
        dyn_w = util if sum(util) > 0 else static_w
        for p, sw, dw in zip(pids, static_w, dyn_w):
            d = dynamic * dw / sum(dyn_w)
            per_pid[p] = per_pid.get(p, 0.0) + static * sw / sum(static_w) + d
            dyn_pid[p] = dyn_pid.get(p, 0.0) + d
    return total, static_total, dynamic_total, per_pid, dyn_pid


def gpu_pids(samples, dev_id):
    """Per pid NVML showed on the device: largest memory (bytes) and summed SM %."""
    seen = {}
    for s in samples:
        for p in (device_in(s, dev_id) or {}).get("gpu_processes", []):
            e = seen.setdefault(p["pid"], {"mem": 0, "sm": 0.0})
            e["mem"] = max(e["mem"], p.get("used_mem_bytes") or 0)
            e["sm"] += p.get("sm_util_pct") or 0.0
    return seen


def match_pids(seen, busy_pid, holder_pid, hold_gib):
    """The script knows its children's pids in its own PID namespace; NVML reports host pids. In a
    container without --pid=host they differ: then take the busiest pid as the busy process and, of
    the others, the one whose memory is closest to the holder's allocation as the holder."""
    if busy_pid in seen and holder_pid in seen:
        return busy_pid, holder_pid, None
    if len(seen) < 2:
        return busy_pid, holder_pid, None
    busy = max(seen, key=lambda p: seen[p]["sm"])
    target = float(hold_gib) * (1 << 30)
    holder = min((p for p in seen if p != busy), key=lambda p: abs(seen[p]["mem"] - target))
    note = (f"pids {busy_pid}/{holder_pid} not among NVML's ({sorted(seen)}): a container without "
            f"--pid=host? Matched by behaviour: busy = {busy} (most SM), holder = {holder} (memory "
            f"closest to {hold_gib} GiB)")
    return busy, holder, note


def conservation(doc):
    """Largest |energy - (sum processes + idle + unattributed)| over the document's devices, J."""
    worst = 0.0
    for d in doc.get("devices", []):
        dev = d["id"]
        parts = sum((p.get("energy_by_device_j") or {}).get(dev, 0.0) for p in doc.get("processes", []))
        parts += (doc.get("idle_j") or {}).get(dev, 0.0) + (doc.get("unattributed_j") or {}).get(dev, 0.0)
        worst = max(worst, abs(d["energy_j"] - parts) / max(1.0, abs(d["energy_j"])))
    return worst


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = argv[1]
    need = ["params.json", "recording.jsonl", "report.json", "nvml-poll.csv"]
    missing = [n for n in need if not os.path.exists(os.path.join(out, n))]
    if missing:
        print(f"{out}: missing {', '.join(missing)} (did gpu-check.sh finish?)", file=sys.stderr)
        return 2
    params = load_json(os.path.join(out, "params.json"))
    report = load_json(os.path.join(out, "report.json"))
    header, samples = read_recording(os.path.join(out, "recording.jsonl"))
    index = int(params.get("gpu_index", 0))
    dev_id = f"gpu{index}"
    idle_w = float(params["gpu_idle_w"])
    busy_pid, holder_pid, pid_note = match_pids(gpu_pids(samples, dev_id), int(params["busy_pid"]),
                                                int(params["holder_pid"]), params.get("hold_gib", 4))
    results = {"synthetic": bool(params.get("synthetic")), "device": dev_id, "busy_pid": busy_pid,
               "holder_pid": holder_pid, "pid_note": pid_note, "checks": {}}
    checks = results["checks"]

    if params.get("synthetic"):
        print("*** SYNTHETIC DATA (fake NVML, made by a test): NOT a hardware measurement ***")
    print(f"kwtop {header.get('kwtop_version', '?')} recording on {header.get('host', '?')}: "
          f"{len(samples)} samples, device {dev_id}")
    if pid_note:
        print(f"note: {pid_note}")

    # 1. kwtop's device energy vs the NVML counter over the same window.
    dev = next((d for d in report.get("devices", []) if d.get("id") == dev_id), None)
    with_counter = [s for s in samples if (device_in(s, dev_id) or {}).get("energy")]
    poll = read_poll(os.path.join(out, "nvml-poll.csv"), index)
    energy = {"pass": False}
    if dev is None or len(with_counter) < 2:
        energy["why"] = f"{dev_id} not in report.json or its energy counter was never read"
    else:
        t0, t1 = with_counter[0]["wall_ms"], with_counter[-1]["wall_ms"]
        e0, e1 = interpolate(poll, t0), interpolate(poll, t1)
        kwtop_j = dev["energy_j"]
        rec_j = (device_in(with_counter[-1], dev_id)["energy"]["value_uj"]
                 - device_in(with_counter[0], dev_id)["energy"]["value_uj"]) * 1e-6
        energy.update(kwtop_j=kwtop_j, recorded_counter_j=rec_j, window_s=(t1 - t0) / 1000.0,
                      provenance=dev.get("provenance"))
        if e0 is None or e1 is None:
            energy["why"] = "the NVML poller did not cover kwtop's recording window"
        else:
            nvml_j = (e1 - e0) / 1000.0
            pct = (kwtop_j - nvml_j) / nvml_j * 100.0 if nvml_j > 0 else math.inf
            energy.update(nvml_counter_j=nvml_j, diff_pct=pct)
            energy["pass"] = abs(pct) < ENERGY_TOLERANCE_PCT
    smi0 = read_smi_energy(os.path.join(out, "smi-energy-start.csv"), index)
    smi1 = read_smi_energy(os.path.join(out, "smi-energy-end.csv"), index)
    if smi0 is not None and smi1 is not None:
        energy["nvidia_smi_whole_run_j"] = smi1 - smi0
    checks["energy"] = energy

    # 2. The busy process's share of the dynamic energy.
    total, static, dynamic, per_pid, dyn_pid = replay(samples, dev_id, idle_w)
    kwtop_busy = sum((p.get("energy_by_device_j") or {}).get(dev_id, 0.0)
                     for p in report.get("processes", []) if p.get("pid") == busy_pid)
    busy = {"gpu_idle_w": idle_w, "replay_energy_j": total, "static_j": static, "dynamic_j": dynamic,
            "busy_dynamic_j": dyn_pid.get(busy_pid, 0.0), "busy_replay_j": per_pid.get(busy_pid, 0.0),
            "busy_kwtop_j": kwtop_busy}
    share = dyn_pid.get(busy_pid, 0.0) / dynamic if dynamic > 0 else 0.0
    agree = (abs(kwtop_busy - busy["busy_replay_j"]) / busy["busy_replay_j"] * 100.0
             if busy["busy_replay_j"] > 0 else math.inf)
    busy.update(share_of_dynamic=share, kwtop_vs_replay_pct=agree)
    busy["pass"] = share > BUSY_MIN_SHARE and agree < ENERGY_TOLERANCE_PCT
    checks["busy"] = busy

    # 3. The idle holder.
    rows = [p for p in report.get("processes", []) if p.get("pid") == holder_pid]
    holder = {"pass": False}
    if not rows:
        holder["why"] = f"holder pid {holder_pid} not in report.json"
    else:
        h = max(rows, key=lambda p: p.get("energy_j", 0.0))
        gpu_j = (h.get("energy_by_device_j") or {}).get(dev_id, 0.0)
        holder.update(state=h.get("state"), idle_for_s=h.get("idle_for_s"), gpu_j=gpu_j,
                      gpu_util_pct=h.get("gpu_util_pct"), gpu_mem_bytes=h.get("gpu_mem_bytes"),
                      wasted_j_all_holders=(report.get("totals") or {}).get("idle_holder_wasted_j"))
        holder["pass"] = h.get("state") == "idle-holder" and gpu_j > 0
    checks["holder"] = holder

    # 4. Conservation per device.
    cons = {"report_worst_rel": conservation(report)}
    mid = os.path.join(out, "snapshot-mid.json")
    if os.path.exists(mid):
        cons["snapshot_mid_worst_rel"] = conservation(load_json(mid))
    cons["pass"] = all(v <= 1e-6 for k, v in cons.items() if k.endswith("worst_rel"))
    checks["conservation"] = cons

    e = checks["energy"]
    if "nvml_counter_j" in e:
        print(f"[{verdict(e['pass'])}] energy: kwtop {e['kwtop_j']:.1f} J ({e['provenance']}) vs NVML "
              f"counter {e['nvml_counter_j']:.1f} J over {e['window_s']:.1f} s: {e['diff_pct']:+.3f} % "
              f"(limit {ENERGY_TOLERANCE_PCT} %)")
    else:
        print(f"[FAIL] energy: {e.get('why')}")
    if "nvidia_smi_whole_run_j" in e:
        print(f"       nvidia-smi energy.consumption advanced {e['nvidia_smi_whole_run_j']:.1f} J over the "
              "whole script (a longer window than the recording; for reference)")
    print(f"[{verdict(busy['pass'])}] busy: pid {busy_pid} got {share * 100:.1f} % of {dynamic:.1f} J dynamic "
          f"energy (static {static:.1f} J at {idle_w:.1f} W); kwtop charged it {kwtop_busy:.1f} J, "
          f"replay {busy['busy_replay_j']:.1f} J ({agree:.3f} % apart)")
    if "state" in holder:
        print(f"[{verdict(holder['pass'])}] holder: pid {holder_pid} state {holder['state']}, idle for "
              f"{holder['idle_for_s']} s, charged {holder['gpu_j']:.1f} J on {dev_id} "
              f"(SM {holder['gpu_util_pct']} %)")
    else:
        print(f"[FAIL] holder: {holder['why']}")
    print(f"[{verdict(cons['pass'])}] conservation: worst relative error "
          + ", ".join(f"{k.removesuffix('_worst_rel')} {v:.2e}" for k, v in cons.items() if k.endswith("worst_rel")))

    ok = all(c["pass"] for c in checks.values())
    results["pass"] = ok
    with open(os.path.join(out, "analysis.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=str)
        f.write("\n")
    print("ALL CHECKS PASS" if ok else "SOME CHECKS FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
