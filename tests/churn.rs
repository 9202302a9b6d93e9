//! Process churn: while `kwtop record` samples the real /proc, thousands of short-lived processes are
//! spawned and reaped (≥ 200 per second for 30 s). kwtop must not crash or spam errors, its memory must
//! stay bounded, and replaying the recording must never lose energy: per-process totals never go down
//! and every device conserves energy at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kwtop::engine::{Engine, EngineParams};
use kwtop::recording::Reader;

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "slow: 30 s of process churn; .ci/run runs it with --include-ignored"]
fn churn_of_thousands_of_processes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kwtop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sources]\nnvml = false\npowercap_root = \"{}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let rec = dir.path().join("churn.jsonl");
    let kw = Command::new(env!("CARGO_BIN_EXE_kwtop"))
        .args(["record", "--interval", "250ms", "--duration", "32s", "-o"])
        .arg(&rec)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, spawned) = (Arc::clone(&stop), Arc::clone(&spawned));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Each child burns a little CPU so it has energy to account, then exits.
                    let st = Command::new("sh")
                        .args(["-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); done"])
                        .status();
                    if st.is_ok() {
                        spawned.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut peak_kib = 0;
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500)); // real-time: churn runs for 30 s of wall-clock time while kwtop samples.
        peak_kib = peak_kib.max(vm_hwm_kib(kw.id()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let n = spawned.load(Ordering::Relaxed);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let out = kw.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "churn: {n} processes in 30 s ({rate:.0}/s); kwtop peak RSS {peak_kib} KiB; stderr {} lines",
        stderr.lines().count()
    );
    assert!(out.status.success(), "{stderr}");
    assert!(rate >= 200.0, "churn too slow to be a test: {rate:.0}/s");
    assert!(stderr.lines().count() <= 5, "no error spam: {stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(peak_kib < 50 * 1024, "kwtop record peak RSS {peak_kib} KiB");

    // Replay through the same pipeline: totals never go down, conservation at every step.
    let reader = Reader::new(BufReader::new(std::fs::File::open(&rec).unwrap())).unwrap();
    let mut engine = Engine::new(&EngineParams::default());
    let mut last = 0.0;
    let mut samples = 0;
    let mut seen = std::collections::HashSet::new();
    for s in reader {
        let s = s.unwrap();
        // The first sample is only the baseline: the ledger starts with the first interval.
        if samples > 0 {
            for p in &s.processes {
                seen.insert(p.key);
            }
        }
        samples += 1;
        engine.push(s);
        let l = &engine.ledger;
        let total: f64 = l.processes().map(|e| e.energy_j).sum::<f64>()
            + l.folded().values().map(|f| f.energy_j).sum::<f64>();
        assert!(total + 1e-9 >= last, "process energy went down: {last} → {total}");
        last = total;
        for (i, d) in l.devices.iter().enumerate() {
            let procs: f64 = l
                .processes()
                .map(|e| e.energy_by_dev.get(i).copied().unwrap_or(0.0))
                .sum::<f64>()
                + l.folded()
                    .values()
                    .map(|f| f.energy_by_dev.get(i).copied().unwrap_or(0.0))
                    .sum::<f64>();
            let err = d.energy_j - procs - d.idle_j - d.unattributed_j;
            assert!(err.abs() <= 1e-6 * d.energy_j.max(1.0), "{}: {err}", d.id);
        }
    }
    let exited = engine.ledger.exited().len()
        + engine
            .ledger
            .folded()
            .values()
            .map(|f| f.count as usize)
            .sum::<usize>();
    eprintln!(
        "replay: {samples} samples, {} distinct processes seen, {exited} exited kept",
        seen.len()
    );
    assert!(samples >= 100);
    let running = engine.ledger.running().count();
    assert_eq!(
        exited + running,
        seen.len(),
        "every process ever seen is kept, running or exited"
    );
    assert!(
        exited > 10,
        "short-lived processes seen by the sampler are kept after they exit"
    );
}
