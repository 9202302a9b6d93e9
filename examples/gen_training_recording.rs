//! A synthetic `kwtop.recording/1` of a GPU training, for the README's screenshot
//! (`scripts/screenshot.sh`) and for trying `kwtop replay` without a GPU.
//!
//! The node: two NVIDIA H100 80GB (700 W limit) and two Xeon packages read through RAPL, 128 CPUs.
//! maria trains a model in one python process on both GPUs (85-91 % SM, ~56 GiB each), fed by six
//! DataLoader workers on the CPU; every 150 s an evaluation dips the GPUs, and at 290 s a checkpoint
//! is written. alex's Jupyter kernel holds 20 GiB on gpu1 at 0 % SM the whole time (an idle holder
//! once `[idle_holder] after`, 5 min by default, has passed). sam tokenizes shards on the CPU, and
//! about thirty system processes and kernel threads do what they usually do. `watch nvidia-smi`
//! runs nvidia-smi every 5 s: children too short to be sampled, seen only in its waited-for ticks.
//!
//! The numbers are plausible, not measured: the header's notes say so. Deterministic (a fixed-seed
//! LCG, a fixed wall clock), so the screenshot is the same on every run. Written through
//! [`kwtop::recording::Writer`] from [`kwtop_core::testing`]'s builders, so the file is always in
//! the format this kwtop writes.
//!
//! `cargo run --example gen_training_recording -- OUT.jsonl [SECONDS]` (default 600: the live
//! monitor's default 10-minute chart window, full).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::sync::Arc;

use kwtop::recording::{Header, SCHEMA, Writer};
use kwtop::sample::{DeviceKind, DeviceReading, ProcInfo, ProcessReading};
use kwtop_core::testing;

/// 2026-03-12 14:05:00 UTC: a fixed wall clock, so every run writes the same file.
const STARTED_MS: i64 = 1_773_324_300_000;
/// The node has been up nine days.
const UPTIME_S: f64 = 777_600.0;
const TPS: u64 = 100;
const CPUS: u64 = 128;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// What NVML reports as total memory of an H100 80GB HBM3 (81559 MiB).
const H100_MEM: u64 = 81_559 * MIB;
const H100_LIMIT_W: f64 = 700.0;
const TRAINER: u32 = 48_213;
const KERNEL: u32 = 51_877;
const WATCH: u32 = 48_377;

/// Deterministic pseudo-random numbers (no dependency, reproducible files).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }

    /// Roughly normal, mean 0, standard deviation `sd` (sum of four uniforms).
    fn noise(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        s * sd * 1.73
    }
}

/// What the training is doing at `t` seconds into the recording.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Train,
    Eval,
    Checkpoint,
}

fn phase(t: u64) -> Phase {
    match t {
        290..302 => Phase::Checkpoint,
        _ if t % 150 >= 138 => Phase::Eval,
        _ => Phase::Train,
    }
}

/// How a process spends CPU: mean ticks per second, by phase of the training where it matters.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// About this many ticks per second, whatever the training does.
    Steady(f64),
    /// The training's main process: feeding the GPUs, then writing the checkpoint.
    Trainer,
    /// A DataLoader worker: busy while the GPUs train, quiet while they evaluate or save.
    Worker,
    /// Wakes every `period` seconds for `ticks` ticks.
    Periodic { period: u64, ticks: u64 },
}

struct Proc {
    pid: u32,
    starttime: u64,
    ppid: u32,
    info: Arc<ProcInfo>,
    ticks: u64,
    child_ticks: u64,
    load: Load,
    /// Carry of fractional ticks, so the mean rate holds over time.
    frac: f64,
}

/// The processes of the node, one a line: pid, ppid, user, comm, load, minutes since it started,
/// command line (`-`: none, a kernel thread; `~` in comm is a space). Load: ticks per second (mean), `trainer`, `worker`, or
/// `every:P:N` (N ticks every P seconds).
const PROCESSES: &str = "\
1      0     root            systemd          0.3      12960 /sbin/init splash
2      0     root            kthreadd         0        12960 -
14     2     root            ksoftirqd/0      0.4      12960 -
17     2     root            rcu_preempt      0.9      12960 -
1203   2     root            kworker/u256:3   1.2      95    -
1877   2     root            nvidia-modeset/  0        12959 -
2044   2     root            irq/145-nvidia   0.6      12959 -
2046   2     root            irq/146-nvidia   0.6      12959 -
611    1     root            systemd-journal  0.4      12960 /usr/lib/systemd/systemd-journald
652    1     root            systemd-udevd    0.05     12960 /usr/lib/systemd/systemd-udevd
881    1     systemd-network systemd-network  0.05     12959 /usr/lib/systemd/systemd-networkd
884    1     systemd-resolve systemd-resolve  0.08     12959 /usr/lib/systemd/systemd-resolved
1020   1     messagebus      dbus-daemon      0.05     12959 @dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only
1031   1     root            irqbalance       every:10:3  12959 /usr/sbin/irqbalance --foreground
1044   1     syslog          rsyslogd         0.1      12959 /usr/sbin/rsyslogd -n -iNONE
1052   1     root            systemd-logind   0.03     12959 /usr/lib/systemd/systemd-logind
1088   1     _chrony         chronyd          every:16:1  12959 /usr/sbin/chronyd -F 1
1130   1     root            cron             every:60:1  12959 /usr/sbin/cron -f -P
1214   1     root            nvidia-persiste  0.02     12958 /usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose
1290   1     root            containerd       0.6      12958 /usr/bin/containerd
1371   1     root            dockerd          0.3      12958 /usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
1402   1     root            sshd             0.02     12958 sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups
1466   1     prometheus      node_exporter    every:15:9  12958 /usr/bin/prometheus-node-exporter --collector.systemd
1502   1     root            dcgm-exporter    every:15:14 12958 /usr/bin/dcgm-exporter -f /etc/dcgm-exporter/dcp-metrics-included.csv
1533   1     root            agetty           0        12958 /sbin/agetty -o -p -- \\u --noclear - linux
2310   1     root            kwtop            1.1      3100  /usr/local/bin/kwtop record -o /var/lib/kwtop/node.jsonl
3090   1     alex            jupyter-lab      0.6      410   /home/alex/.venv/bin/python /home/alex/.venv/bin/jupyter-lab --no-browser --port 8890
51877  3090  alex            python           0.2      95    /home/alex/.venv/bin/python -m ipykernel_launcher -f /home/alex/.local/share/jupyter/runtime/kernel-7f3c2a1e.json
47950  1402  maria           sshd             0.1      190   sshd: maria@pts/0
47958  47950 maria           bash             0        190   -bash
47990  47958 maria           tmux:~server     0.2      188   tmux new -s train
48001  47990 maria           bash             0        188   -bash
48213  48001 maria           pt_main_thread   trainer  41    python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48230  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48231  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48232  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48233  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48234  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48235  48213 maria           pt_data_worker   worker   40.9  python train.py --model llama-3-8b --data /data/fineweb-edu --bf16 --devices 0,1 --micro-batch 4
48360  47990 maria           bash             0        39    -bash
48377  48360 maria           watch            0.05     38    watch -n 5 nvidia-smi
48402  47990 maria           bash             0        37    -bash
48455  48402 maria           tensorboard      1.6      36    /home/maria/venv/bin/python /home/maria/venv/bin/tensorboard --logdir runs --port 6006
49120  1402  sam             sshd             0.05     70    sshd: sam@pts/2
49127  49120 sam             bash             0        70    -bash
49301  49127 sam             python           360      62    python tokenize_shards.py --threads 4 --in /data/raw/cc-2025-51 --out /data/tok
50802  1402  alex            sshd             0.1      20    sshd: alex@pts/3
50809  50802 alex            bash             0        20    -bash
50861  50809 alex            htop             2.4      18    htop
";

/// The kernel's tick counts for a process that started `minutes_ago` before the recording.
fn starttime(minutes_ago: f64) -> u64 {
    ((UPTIME_S - minutes_ago * 60.0) * TPS as f64) as u64
}

fn parse_load(s: &str) -> Load {
    match s {
        "trainer" => Load::Trainer,
        "worker" => Load::Worker,
        _ => match s.strip_prefix("every:").and_then(|r| r.split_once(':')) {
            Some((p, n)) => Load::Periodic {
                period: p.parse().expect("period"),
                ticks: n.parse().expect("ticks"),
            },
            None => Load::Steady(s.parse().expect("ticks per second")),
        },
    }
}

/// [`PROCESSES`], each with what it used before the recording started (only differences count).
fn procs(rng: &mut Lcg) -> Vec<Proc> {
    PROCESSES
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().take(6).chain([rest(line, 6)]).collect();
            let pid: u32 = f[0].parse().expect("pid");
            let user = f[2];
            let uid = match user {
                "root" => 0,
                "maria" => 1001,
                "alex" => 1002,
                "sam" => 1003,
                _ => 100 + pid % 900,
            };
            let info = ProcInfo {
                comm: f[3].replace('~', " "),
                cmdline: if f[6] == "-" { String::new() } else { f[6].into() },
                user: user.into(),
                uid: Some(uid),
                ..Default::default()
            };
            let minutes_ago: f64 = f[5].parse().expect("minutes");
            Proc {
                pid,
                starttime: starttime(minutes_ago),
                ppid: f[1].parse().expect("ppid"),
                info: Arc::new(info),
                ticks: (minutes_ago * 60.0 * rng.unit() * 2.0) as u64,
                child_ticks: 0,
                load: parse_load(f[4]),
                frac: 0.0,
            }
        })
        .collect()
}

/// `line` after its first `n` whitespace-separated fields, trimmed.
fn rest(line: &str, n: usize) -> &str {
    let mut s = line.trim_start();
    for _ in 0..n {
        s = s.trim_start_matches(|c: char| !c.is_whitespace()).trim_start();
    }
    s
}

/// Ticks per second a process with `load` uses at `t`.
fn rate(load: Load, t: u64, rng: &mut Lcg) -> f64 {
    let r = match load {
        Load::Steady(r) => r * (1.0 + rng.noise(0.3)),
        Load::Trainer => match phase(t) {
            Phase::Train => 118.0 + rng.noise(9.0),
            Phase::Eval => 96.0 + rng.noise(8.0),
            Phase::Checkpoint => 265.0 + rng.noise(20.0),
        },
        Load::Worker => match phase(t) {
            Phase::Train => 84.0 + rng.noise(6.0),
            Phase::Eval => 31.0 + rng.noise(5.0),
            Phase::Checkpoint => 2.0 + rng.noise(1.0),
        },
        Load::Periodic { period, ticks } => {
            if t.is_multiple_of(period) {
                ticks as f64
            } else {
                0.0
            }
        }
    };
    r.max(0.0)
}

/// GPU state over one second: mean power, device utilisation, the trainer's SM share.
struct GpuStep {
    power_w: f64,
    util_pct: f64,
    trainer_sm: f64,
}

fn gpu_step(i: usize, t: u64, rng: &mut Lcg) -> GpuStep {
    // The model is split in two: gpu1 runs the second half of the layers and waits on gpu0 a
    // little (pipeline bubbles), so it draws less.
    let (base, busy, sm) = [(628.0, 99.0, 91.0), (536.0, 96.0, 85.0)][i];
    let (power_w, util_pct, sm) = match phase(t) {
        Phase::Train => (base + rng.noise(28.0), busy + rng.noise(0.6), sm + rng.noise(2.5)),
        Phase::Eval => (
            base * 0.58 + rng.noise(25.0),
            74.0 + rng.noise(3.0),
            52.0 + rng.noise(4.0),
        ),
        Phase::Checkpoint => (118.0 + rng.noise(6.0), 6.0 + rng.noise(2.0), 2.5 + rng.noise(1.0)),
    };
    GpuStep {
        power_w: power_w.clamp(70.0, H100_LIMIT_W),
        util_pct: util_pct.clamp(0.0, 100.0).round(),
        trainer_sm: sm.clamp(0.0, 100.0).round(),
    }
}

/// Everything that accumulates from one second to the next.
struct Node {
    rng: Lcg,
    procs: Vec<Proc>,
    busy: u64,
    idle: u64,
    cpu_uj: [u64; 2],
    gpu_uj: [u64; 2],
    temp_c: [f64; 2],
}

impl Node {
    fn new() -> Node {
        let mut rng = Lcg(0x6b77_746f_7020_3135);
        let procs = procs(&mut rng);
        Node {
            rng,
            procs,
            busy: 8_113_402_551,
            idle: 91_702_336_190,
            cpu_uj: [48_211_907_331_522, 45_980_114_207_915],
            gpu_uj: [1_931_552_118_000, 1_874_009_663_000],
            temp_c: [64.0, 61.0],
        }
    }

    /// Advance one second to `t` (nothing moves at `t` = 0) and read the node.
    fn sample(&mut self, t: u64) -> kwtop::sample::Sample {
        let gpus = [gpu_step(0, t, &mut self.rng), gpu_step(1, t, &mut self.rng)];
        if t > 0 {
            self.advance(t, &gpus);
        }
        let processes: Vec<ProcessReading> = self
            .procs
            .iter()
            .map(|p| {
                testing::process(p.pid, p.starttime, p.ticks)
                    .ppid(p.ppid)
                    .child_ticks(p.child_ticks)
                    .info(&p.info)
                    .build()
            })
            .collect();
        let mut devices: Vec<DeviceReading> = (0..2).map(|i| self.gpu(i, &gpus[i])).collect();
        devices.extend((0..2).map(|i| {
            let mut d = testing::counter(
                format!("cpu{i}"),
                DeviceKind::Cpu,
                format!("package-{i} (RAPL)"),
                self.cpu_uj[i],
            );
            d.source = Some("RAPL powercap".into());
            d
        }));
        testing::sample_at(t as f64)
            .wall_origin_ms(STARTED_MS)
            .uptime_origin(UPTIME_S)
            .cpu(self.busy, self.idle)
            .procs(processes)
            .devices(devices)
            .build()
    }

    fn advance(&mut self, t: u64, gpus: &[GpuStep; 2]) {
        let mut busy = 0.0;
        for p in &mut self.procs {
            let exact = rate(p.load, t, &mut self.rng) + p.frac;
            let whole = exact.floor();
            p.frac = exact - whole;
            p.ticks += whole as u64;
            busy += whole;
        }
        // watch's nvidia-smi children: each lives ~0.1 s, reaped by watch.
        if t.is_multiple_of(5)
            && let Some(w) = self.procs.iter_mut().find(|p| p.pid == WATCH)
        {
            w.child_ticks += 7 + self.rng.next() % 3;
        }
        // Interrupts, softirqs and the short-lived: busy time no process shows.
        let busy = busy as u64 + 14 + self.rng.next() % 6;
        self.busy += busy;
        self.idle += (CPUS * TPS).saturating_sub(busy);
        // Package power: ~78 W at rest, ~0.075 W per busy tick per second; package 0 runs more of it.
        for (i, share) in [0.58, 0.42].into_iter().enumerate() {
            let w = 78.0 - 3.0 * i as f64 + 0.075 * busy as f64 * share + self.rng.noise(2.0);
            self.cpu_uj[i] += (w * 1e6) as u64;
        }
        for (i, g) in gpus.iter().enumerate() {
            // NVML counts millijoules.
            self.gpu_uj[i] += (g.power_w * 1e3).round() as u64 * 1000;
            let target = 33.0 + 0.055 * g.power_w;
            self.temp_c[i] += (target - self.temp_c[i]) * 0.12;
        }
    }

    fn gpu(&mut self, i: usize, step: &GpuStep) -> DeviceReading {
        let mut holders = vec![testing::holder(
            TRAINER,
            [57_344, 56_832][i] * MIB,
            Some(step.trainer_sm),
        )];
        if i == 1 {
            // The notebook kernel: loaded a model an hour ago, still holds it, computes nothing.
            holders.push(testing::holder(KERNEL, 20 * GIB, Some(0.0)));
        }
        let used: u64 = holders.iter().filter_map(|h| h.used_mem_bytes).sum::<u64>() + 531 * MIB;
        let mut d = testing::gpu(
            format!("gpu{i}"),
            "NVIDIA H100 80GB HBM3",
            self.gpu_uj[i],
            Some(H100_LIMIT_W),
            holders,
        );
        d.vendor = Some("NVIDIA".into());
        d.source = Some("NVML".into());
        d.power_w = Some(((step.power_w + self.rng.noise(4.0)) * 1000.0).round() / 1000.0);
        d.util_pct = Some(step.util_pct);
        d.mem_used_bytes = Some(used);
        d.mem_total_bytes = Some(H100_MEM);
        d.temperature_c = Some(self.temp_c[i].round());
        d
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: gen_training_recording OUT.jsonl [SECONDS]");
        std::process::exit(2);
    };
    let seconds: u64 = args
        .get(1)
        .map_or(600, |s| s.parse().expect("SECONDS: a whole number"));
    let header = Header {
        schema: SCHEMA.into(),
        host: "gpu-node-07".into(),
        kwtop_version: env!("CARGO_PKG_VERSION").into(),
        started_ms: STARTED_MS,
        interval_s: 1.0,
        notes: vec![
            "synthetic: examples/gen_training_recording.rs (plausible numbers, not a hardware recording)"
                .into(),
            "2 x NVIDIA H100 80GB HBM3 (700 W), 2 x RAPL package, 128 CPUs".into(),
        ],
        cmdline: None,
    };
    let file = std::fs::File::create(out).unwrap_or_else(|e| panic!("cannot create {out}: {e}"));
    let mut w = Writer::new(BufWriter::new(file), &header).expect("header");
    let mut node = Node::new();
    for t in 0..=seconds {
        w.write(&node.sample(t)).expect("write sample");
    }
    w.finish().expect("finish").flush().expect("flush");
}
