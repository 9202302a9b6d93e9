//! Long-session soak: a synthetic 24-hour recording at 1 Hz with 1,000 processes churning (a share of
//! them replaced every second) is written through the real recording writer into a pipe, read back by
//! the real reader, and fed to the live monitor's `App` (engine, ledger, tiered history, table rows).
//! Resident memory must stay under a bound and must not grow in the second half.
//!
//! `cargo run --release --example soak -- [HOURS] [PROCS] [CHURN_PER_S] [MAX_RSS_MIB]`
//! (defaults 24 1000 20 50); exits 1 when a bound is broken. `.ci/run` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, BufWriter};

use kwtop::app::{App, AppParams, Msg, ViewOptions};
use kwtop::recording::{Header, Reader, SCHEMA, Writer};
use kwtop::sample::{DeviceKind, ProcessReading, Sample};
use kwtop_core::testing;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Deterministic pseudo-random numbers (no dependency, reproducible runs).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

struct Gen {
    procs: Vec<ProcessReading>,
    next_pid: u32,
    rng: Lcg,
    busy: u64,
    idle: u64,
    cpu_uj: u64,
    gpu_uj: u64,
}

const COMMANDS: [&str; 8] = ["python", "bash", "sshd", "node", "java", "rsync", "make", "cc1"];

impl Gen {
    fn new_proc(&mut self, t: u64) -> ProcessReading {
        self.next_pid = if self.next_pid >= 4_000_000 {
            300
        } else {
            self.next_pid + 1
        };
        let comm = COMMANDS[(self.rng.next() % COMMANDS.len() as u64) as usize];
        // Starttime draws from the generator before the user does, as the sequence always has.
        let starttime = 100 * (1000 + t) + self.rng.next() % 100;
        let user = format!("user{}", self.rng.next() % 20);
        testing::process(self.next_pid, starttime, 0)
            .comm(comm)
            .cmdline(format!("/usr/bin/{comm} --job {}", self.next_pid))
            .user(user)
            .build()
    }

    fn sample(&mut self, t: u64, churn: usize) -> Sample {
        for _ in 0..churn {
            let i = (self.rng.next() % self.procs.len() as u64) as usize;
            // Keep pids 0..8 (the GPU holders) stable.
            if i >= 8 {
                self.procs[i] = self.new_proc(t);
            }
        }
        let mut busy_delta = 0;
        for p in &mut self.procs {
            let d = self.rng.next() % 3;
            p.cpu_ticks += d;
            busy_delta += d;
        }
        self.busy += busy_delta + 5;
        self.idle += 200 - (busy_delta + 5).min(200);
        self.cpu_uj += 120_000_000 + self.rng.next() % 20_000_000;
        self.gpu_uj += 500_000_000 + self.rng.next() % 100_000_000;
        let cpu = testing::counter(
            "cpu0",
            DeviceKind::Cpu,
            "package-0 (RAPL)",
            self.cpu_uj % 262_143_328_851,
        );
        let holders = self.procs[..8]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let sm = if i == 7 {
                    0.0
                } else {
                    (self.rng.next() % 100) as f64
                };
                testing::holder(p.key.pid, 4 << 30, Some(sm))
            })
            .collect();
        let gpu = testing::gpu("gpu0", "NVIDIA H100 80GB HBM3", self.gpu_uj, Some(700.0), holders);
        testing::sample_at(t as f64)
            .wall_origin_ms(1_700_000_000_000)
            .uptime_origin(1000.0)
            .cpu(self.busy, self.idle)
            .procs(self.procs.clone())
            .devices([testing::wrapping(cpu, Some(262_143_328_850)), gpu])
            .build()
    }
}

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let hours = args.first().copied().unwrap_or(24.0);
    let n_procs = args.get(1).copied().unwrap_or(1000.0) as usize;
    let churn = args.get(2).copied().unwrap_or(20.0) as usize;
    let max_rss_mib = args.get(3).copied().unwrap_or(50.0);
    let ticks = (hours * 3600.0) as u64;

    let (rx, tx) = std::io::pipe().expect("pipe");
    let writer = std::thread::spawn(move || {
        let header = Header {
            schema: SCHEMA.into(),
            host: "soak".into(),
            kwtop_version: env!("CARGO_PKG_VERSION").into(),
            started_ms: 1_700_000_000_000,
            interval_s: 1.0,
            notes: vec!["synthetic soak recording".into()],
            cmdline: None,
        };
        let mut w = Writer::new(BufWriter::new(tx), &header).expect("header");
        let mut g = Gen {
            procs: Vec::new(),
            next_pid: 300,
            rng: Lcg(42),
            busy: 0,
            idle: 0,
            cpu_uj: 0,
            gpu_uj: 0,
        };
        g.procs = (0..n_procs).map(|_| g.new_proc(0)).collect();
        for t in 0..ticks {
            let s = g.sample(t, churn);
            if w.write(&s).is_err() {
                return;
            }
        }
    });

    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    let reader = Reader::new(BufReader::new(rx)).expect("header");
    let (mut rss_half, mut rss_peak_second_half) = (0u64, 0u64);
    let start = std::time::Instant::now();
    for (i, s) in reader.enumerate() {
        let s = s.expect("sample");
        app.update(Msg::Sample(Box::new(s)));
        let i = i as u64;
        if i.is_multiple_of(600) {
            // What the screen would build every frame: the table rows.
            let _ = app.rows();
        }
        if i == ticks / 2 {
            rss_half = rss_kib();
        }
        if i > ticks / 2 && i.is_multiple_of(600) {
            rss_peak_second_half = rss_peak_second_half.max(rss_kib());
        }
        if i.is_multiple_of(21_600) {
            eprintln!("soak: t = {:5.1} h  RSS {} KiB", i as f64 / 3600.0, rss_kib());
        }
    }
    writer.join().expect("writer");
    let end = rss_kib();
    rss_peak_second_half = rss_peak_second_half.max(end);
    let l = app.ledger();
    let total: f64 = l.devices.iter().map(|d| d.energy_j).sum();
    let kept = l.exited().len() + l.running().count();
    let folded: u64 = l.folded().values().map(|f| f.count).sum();
    println!(
        "soak: {hours} h at 1 Hz, {n_procs} processes, {churn} replaced/s: {:.0} s wall; RSS at half {} KiB, \
         peak in second half {} KiB, end {} KiB; {kept} process rows + {folded} folded exited; {:.2} kWh",
        start.elapsed().as_secs_f64(),
        rss_half,
        rss_peak_second_half,
        end,
        total / 3.6e6
    );
    let mut failed = false;
    if rss_peak_second_half as f64 > max_rss_mib * 1024.0 {
        eprintln!("soak: FAIL: RSS {rss_peak_second_half} KiB above {max_rss_mib} MiB");
        failed = true;
    }
    // "Does not grow": the second half's peak may exceed the half-way mark by allocator noise only.
    if rss_peak_second_half > rss_half + rss_half / 20 + 1024 {
        eprintln!("soak: FAIL: RSS grew in the second half ({rss_half} → {rss_peak_second_half} KiB)");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!("soak: ok");
}
