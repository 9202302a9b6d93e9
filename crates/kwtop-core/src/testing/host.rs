//! A synthetic host, one [`Sample`] per second: a GPU training node at rest around one job, for
//! recording-size measurements and long runs.
//!
//! What it holds (the defaults of [`HostShape`]): `procs` processes, of which a third are kernel
//! threads (`kworker/…`, no command line) and the rest services, shells and user programs with real
//! looking command lines, users and cgroups (`/system.slice/…`, `/user.slice/…`, a Slurm job). Each
//! second the `busy` job processes (GPU workers, data loaders) gain CPU ticks, a handful of others
//! (`sporadic`) gain one or two, and every `spawn_every_s` seconds a short-lived command starts under
//! a shell, runs `life_s` seconds and exits (its parent's waited-for children's ticks grow). Two CPU
//! packages and two DRAM domains (RAPL, unwrapped counters), two GPUs with two job processes each
//! (energy, power, utilisation, temperature, memory that moves now and then). The monotonic clock
//! jitters by microseconds as a real sampler's does, so times have all their digits.
//!
//! Deterministic (a fixed LCG): the same shape gives the same samples.

use std::sync::Arc;

use crate::cgroup::parse_cgroup;
use crate::sample::{DeviceKind, DeviceReading, ProcInfo, ProcessReading, Sample};

/// The host's size and activity.
#[derive(Debug, Clone, Copy)]
pub struct HostShape {
    pub procs: usize,
    /// Job processes that gain CPU ticks every second.
    pub busy: usize,
    /// Other processes that gain a tick or two each second (picked at random).
    pub sporadic: usize,
    /// A short-lived command starts every this many seconds (0: never).
    pub spawn_every_s: u64,
    /// Seconds a short-lived command lives.
    pub life_s: u64,
    pub seed: u64,
}

impl Default for HostShape {
    fn default() -> Self {
        HostShape {
            procs: 400,
            busy: 8,
            sporadic: 12,
            spawn_every_s: 5,
            life_s: 20,
            seed: 7,
        }
    }
}

/// Deterministic pseudo-random numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Command lines of the user-space processes: (comm, cmdline, user, cgroup).
const PROGRAMS: [(&str, &str, &str, &str); 12] = [
    (
        "systemd-journal",
        "/usr/lib/systemd/systemd-journald",
        "root",
        "0::/system.slice/systemd-journald.service",
    ),
    (
        "sshd",
        "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
        "root",
        "0::/system.slice/ssh.service",
    ),
    (
        "containerd",
        "/usr/bin/containerd",
        "root",
        "0::/system.slice/containerd.service",
    ),
    (
        "dockerd",
        "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        "root",
        "0::/system.slice/docker.service",
    ),
    (
        "nvidia-persiste",
        "/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose",
        "nvidia-persistenced",
        "0::/system.slice/nvidia-persistenced.service",
    ),
    (
        "bash",
        "-bash",
        "ana",
        "0::/user.slice/user-1000.slice/session-4.scope",
    ),
    (
        "tmux: server",
        "tmux new -s train",
        "ana",
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/tmux-spawn-3.scope",
    ),
    (
        "python3",
        "/home/ana/venv/bin/python3 -m jupyterlab --no-browser --port 8888",
        "ana",
        "0::/user.slice/user-1000.slice/session-4.scope",
    ),
    (
        "node",
        "/usr/bin/node /home/bob/.vscode-server/bin/out/server-main.js --start-server --host=127.0.0.1",
        "bob",
        "0::/user.slice/user-1001.slice/session-9.scope",
    ),
    (
        "prometheus-node",
        "/usr/bin/prometheus-node-exporter --collector.systemd",
        "prometheus",
        "0::/system.slice/prometheus-node-exporter.service",
    ),
    (
        "cron",
        "/usr/sbin/cron -f -P",
        "root",
        "0::/system.slice/cron.service",
    ),
    (
        "slurmd",
        "/usr/sbin/slurmd -D -s",
        "root",
        "0::/system.slice/slurmd.service",
    ),
];

const JOB_CGROUP: &str = "0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0";

/// The synthetic host; [`SyntheticHost::next_sample`] steps it one second.
pub struct SyntheticHost {
    shape: HostShape,
    rng: Lcg,
    procs: Vec<ProcessReading>,
    /// Index of the shell that short-lived commands start under.
    shell: usize,
    /// Short-lived commands alive: (pid, exits at second).
    transient: Vec<(u32, u64)>,
    next_pid: u32,
    second: u64,
    busy_ticks: u64,
    idle_ticks: u64,
    energy_uj: [u64; 6],
    gpu_mem: [u64; 2],
    gpu_temp: [f64; 2],
}

impl SyntheticHost {
    pub fn new(shape: HostShape) -> Self {
        let mut rng = Lcg(shape.seed);
        let mut procs = Vec::with_capacity(shape.procs + 8);
        let kernel = shape.procs / 3;
        let busy = shape.busy.min(shape.procs.saturating_sub(kernel + 1));
        for i in 0..shape.procs {
            let pid = 2 + i as u32 * 3;
            let st = 10 + i as u64 * 7;
            let (ppid, info) = if i < kernel {
                let comm = match i % 4 {
                    0 => format!("kworker/{}:{}-events", i % 32, i % 3),
                    1 => format!("ksoftirqd/{}", i % 32),
                    2 => format!("migration/{}", i % 32),
                    _ => format!("irq/{}-nvidia", 100 + i),
                };
                let info = ProcInfo {
                    comm,
                    user: "root".into(),
                    uid: Some(0),
                    ..Default::default()
                };
                (2, info)
            } else if i >= shape.procs - busy {
                let k = i - (shape.procs - busy);
                let cmd = format!(
                    "/home/ana/venv/bin/python3 -u train.py --config configs/llm-7b.yaml --rank {k} --world-size {busy}"
                );
                let info = ProcInfo {
                    comm: "python3".into(),
                    cmdline: cmd,
                    user: "ana".into(),
                    uid: Some(1000),
                    cgroup: std::sync::Arc::new(parse_cgroup(JOB_CGROUP)),
                };
                (1, info)
            } else {
                let (comm, cmd, user, cg) = PROGRAMS[(rng.next() as usize) % PROGRAMS.len()];
                let info = ProcInfo {
                    comm: comm.into(),
                    cmdline: cmd.into(),
                    user: user.into(),
                    uid: Some(if user == "root" {
                        0
                    } else {
                        1000 + (user.len() as u32)
                    }),
                    cgroup: std::sync::Arc::new(parse_cgroup(cg)),
                };
                (1, info)
            };
            procs.push(ProcessReading {
                key: crate::sample::ProcKey { pid, starttime: st },
                ppid,
                cpu_ticks: rng.below(50_000),
                child_ticks: 0,
                info: Arc::new(info),
            });
        }
        let shell = kernel.min(procs.len().saturating_sub(1));
        let next_pid = 2 + shape.procs as u32 * 3 + 1000;
        SyntheticHost {
            shape,
            rng,
            procs,
            shell,
            transient: Vec::new(),
            next_pid,
            second: 0,
            busy_ticks: 50_000_000,
            idle_ticks: 900_000_000,
            energy_uj: [0; 6],
            gpu_mem: [61 << 30, 58 << 30],
            gpu_temp: [64.0, 61.0],
        }
    }

    fn step_processes(&mut self) -> u64 {
        let n = self.procs.len();
        let mut ticks = 0;
        // The job's processes: busy every second (data loading, kernel launches).
        let busy_start = n.saturating_sub(self.shape.busy + self.transient.len());
        for i in busy_start..n.saturating_sub(self.transient.len()) {
            let d = 60 + self.rng.below(40);
            self.procs[i].cpu_ticks += d;
            ticks += d;
        }
        for _ in 0..self.shape.sporadic {
            let i = self.rng.below(busy_start as u64) as usize;
            let d = 1 + self.rng.below(2);
            self.procs[i].cpu_ticks += d;
            ticks += d;
        }
        // Short-lived commands: run, exit (their time moves to the shell), start.
        let second = self.second;
        let mut exited_ticks = 0;
        let mut still = Vec::new();
        for (pid, until) in std::mem::take(&mut self.transient) {
            if let Some(pos) = self.procs.iter().position(|p| p.key.pid == pid) {
                if until <= second {
                    exited_ticks += self.procs[pos].cpu_ticks;
                    self.procs.remove(pos);
                } else {
                    let d = self.rng.below(3);
                    self.procs[pos].cpu_ticks += d;
                    ticks += d;
                    still.push((pid, until));
                }
            }
        }
        self.transient = still;
        if let Some(shell) = self.procs.get_mut(self.shell) {
            shell.child_ticks += exited_ticks;
        }
        if self.shape.spawn_every_s > 0 && second.is_multiple_of(self.shape.spawn_every_s) {
            self.next_pid += 1 + self.rng.below(40) as u32;
            let pid = self.next_pid;
            let shell_pid = self.procs.get(self.shell).map_or(1, |p| p.key.pid);
            let what = [
                "nvidia-smi --query-gpu=power.draw --format=csv",
                "sleep 15",
                "du -sh /scratch/ana",
                "rsync -a ckpt/ /mnt/backup/ckpt/",
            ];
            let cmd = what[self.rng.below(what.len() as u64) as usize];
            let comm = cmd.split(' ').next().unwrap_or("sh");
            self.procs.push(ProcessReading {
                key: crate::sample::ProcKey {
                    pid,
                    starttime: 100 * (5_000 + second) + self.rng.below(100),
                },
                ppid: shell_pid,
                cpu_ticks: 0,
                child_ticks: 0,
                info: Arc::new(ProcInfo {
                    comm: comm.into(),
                    cmdline: cmd.into(),
                    user: "ana".into(),
                    uid: Some(1000),
                    cgroup: std::sync::Arc::new(parse_cgroup(
                        "0::/user.slice/user-1000.slice/session-4.scope",
                    )),
                }),
            });
            self.transient.push((pid, second + self.shape.life_s));
        }
        ticks
    }

    fn devices(&mut self) -> Vec<DeviceReading> {
        let mut out = Vec::with_capacity(6);
        let names = [
            ("cpu0", DeviceKind::Cpu, "package-0 (RAPL)", 95_000_000),
            ("cpu1", DeviceKind::Cpu, "package-1 (RAPL)", 90_000_000),
            ("dram0", DeviceKind::Dram, "dram-0 (RAPL)", 11_000_000),
            ("dram1", DeviceKind::Dram, "dram-1 (RAPL)", 10_000_000),
        ];
        for (k, (id, kind, name, per_s)) in names.into_iter().enumerate() {
            self.energy_uj[k] += per_s + self.rng.below(per_s / 5);
            let mut d = super::counter(id, kind, name, self.energy_uj[k]);
            d.vendor = Some("Intel".into());
            d.source = Some("RAPL powercap".into());
            out.push(d);
        }
        for g in 0..2 {
            let mw = 280_000 + self.rng.below(120_000);
            self.energy_uj[4 + g] += mw * 1000 + self.rng.below(1000);
            if self.rng.below(30) == 0 {
                self.gpu_mem[g] =
                    (self.gpu_mem[g] as i64 + (self.rng.below(5) as i64 - 2) * (64 << 20)) as u64;
            }
            if self.rng.below(4) == 0 {
                self.gpu_temp[g] = (self.gpu_temp[g] + self.rng.below(3) as f64 - 1.0).clamp(40.0, 85.0);
            }
            let n = self.procs.len() - self.transient.len();
            let holders = (0..2)
                .map(|h| {
                    let pid = self.procs[n - 1 - (2 * g + h)].key.pid;
                    super::holder(pid, self.gpu_mem[g] / 2, Some((85 + self.rng.below(15)) as f64))
                })
                .collect();
            let mut d = super::gpu(
                format!("gpu{g}"),
                "NVIDIA H100 80GB HBM3",
                self.energy_uj[4 + g],
                Some(700.0),
                holders,
            );
            d.vendor = Some("NVIDIA".into());
            d.source = Some("NVML".into());
            d.power_w = Some(mw as f64 / 1000.0);
            d.util_pct = Some((90 + self.rng.below(11)) as f64);
            d.mem_used_bytes = Some(self.gpu_mem[g]);
            d.mem_total_bytes = Some(85_520_809_984);
            d.temperature_c = Some(self.gpu_temp[g]);
            out.push(d);
        }
        out
    }

    /// The next second's sample.
    pub fn next_sample(&mut self) -> Sample {
        let ticks = self.step_processes();
        // 64 CPUs at USER_HZ 100: 6,400 ticks a second, split busy / idle.
        let busy = (ticks + 40 + self.rng.below(30)).min(6_400);
        self.busy_ticks += busy;
        self.idle_ticks += 6_400 - busy;
        let jitter = self.rng.below(900) as f64 * 1e-6 + 0.000_013_7;
        let t = 1_234.5 + self.second as f64 + jitter;
        let devices = self.devices();
        let s = super::sample_at(t)
            .wall_origin_ms(1_760_000_000_000)
            // /proc/uptime has two decimals.
            .uptime_s(((88_000.0 + t) * 100.0).round() / 100.0)
            .cpu(self.busy_ticks, self.idle_ticks)
            .procs(self.procs.iter().cloned())
            .devices(devices)
            .build();
        self.second += 1;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_has_its_shape_and_moves_as_described() {
        let mut h = SyntheticHost::new(HostShape::default());
        let a = h.next_sample();
        let b = h.next_sample();
        assert!((400..=405).contains(&a.processes.len()), "{}", a.processes.len());
        let changed = a
            .processes
            .iter()
            .zip(&b.processes)
            .filter(|(x, y)| x.key == y.key && x.cpu_ticks != y.cpu_ticks)
            .count();
        assert!((8..=20).contains(&changed), "{changed} processes changed");
        assert_eq!(a.devices.len(), 6);
        assert!(b.devices[4].energy.map(|e| e.value_uj) > a.devices[4].energy.map(|e| e.value_uj));
        assert!(b.mono_s - a.mono_s > 0.99 && b.mono_s - a.mono_s < 1.01);
        // Short-lived commands come and go.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..120 {
            for p in h.next_sample().processes {
                seen.insert(p.key);
            }
        }
        assert!(seen.len() >= 420, "{}", seen.len());
        let again = SyntheticHost::new(HostShape::default()).next_sample();
        assert_eq!(again, a, "deterministic");
    }
}
