//! A `/proc` fixture tree in the kernel's own file formats, for the procfs source's benches and
//! tests: `stat`, `uptime`, and per process `stat` (all 52 fields), `status` (the full text a 6.x
//! kernel writes, about 1.4 KB), `cmdline` (NUL-separated) and `cgroup` (v2).
//!
//! Test support only; std only. Files are written whole (a reader never sees half a file when
//! they are rewritten between reads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// One process to lay out.
#[derive(Debug, Clone)]
pub struct Proc<'a> {
    pub pid: u32,
    pub ppid: u32,
    /// Raw `comm` bytes (up to 15 in the kernel; any bytes here).
    pub comm: &'a [u8],
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
    /// Start time, clock ticks after boot.
    pub starttime: u64,
    pub uid: u32,
    /// The arguments; written NUL-separated with a trailing NUL, as the kernel does.
    pub argv: Vec<String>,
    /// The v2 cgroup path (`0::PATH`).
    pub cgroup: &'a str,
}

fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `/proc/stat` for `cpus` CPUs with `busy` ticks in user and `idle` in idle, split evenly.
pub fn stat(root: &Path, cpus: u32, busy: u64, idle: u64) {
    let mut text = format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n");
    let n = u64::from(cpus.max(1));
    for c in 0..cpus {
        text.push_str(&format!("cpu{c} {} 0 0 {} 0 0 0 0 0 0\n", busy / n, idle / n));
    }
    text.push_str(
        "intr 123456789 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nctxt 987654321\nbtime 1760000000\nprocesses 4242424\n\
         procs_running 3\nprocs_blocked 0\nsoftirq 55555555 0 1111 22 3333 0 0 4444 5555 0 6666\n",
    );
    put(&root.join("stat"), text.as_bytes());
}

/// `/proc/uptime`: seconds since boot and idle seconds, two decimals.
pub fn uptime(root: &Path, s: f64) {
    put(
        &root.join("uptime"),
        format!("{s:.2} {:.2}\n", s * 30.0).as_bytes(),
    );
}

/// Write `p`'s `stat`, `status`, `cmdline` and `cgroup` under `root/PID/`.
pub fn process(root: &Path, p: &Proc) {
    let dir = root.join(p.pid.to_string());
    let Proc {
        pid,
        ppid,
        utime,
        stime,
        cutime,
        cstime,
        starttime,
        uid,
        ..
    } = *p;
    let mut stat = format!("{pid} (").into_bytes();
    stat.extend_from_slice(p.comm);
    stat.extend_from_slice(
        format!(
            ") S {ppid} {pid} {pid} 0 -1 4194560 2841 0 12 0 {utime} {stime} {cutime} {cstime} 20 0 4 0 {starttime} \
             1286516736 52377 18446744073709551615 94843094867968 94843097545713 140726364215968 0 0 0 0 \
             16781312 134234626 0 0 0 17 3 0 0 0 0 0 94843098274960 94843098388560 94843113021440 \
             140726364224299 140726364224343 140726364224343 140726364225511 0\n"
        )
        .as_bytes(),
    );
    put(&dir.join("stat"), &stat);
    let name = String::from_utf8_lossy(p.comm);
    let status = format!(
        "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\n\
         TracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\nFDSize:\t64\n\
         Groups:\t4 24 27 30 46 {uid} \nNStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{pid}\nNSsid:\t{pid}\n\
         Kthread:\t0\nVmPeak:\t 1290752 kB\nVmSize:\t 1256364 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n\
         VmHWM:\t  212340 kB\nVmRSS:\t  209508 kB\nRssAnon:\t  180004 kB\nRssFile:\t   29504 kB\n\
         RssShmem:\t       0 kB\nVmData:\t  262144 kB\nVmStk:\t     132 kB\nVmExe:\t    2616 kB\n\
         VmLib:\t   28836 kB\nVmPTE:\t     612 kB\nVmSwap:\t       0 kB\nHugetlbPages:\t       0 kB\n\
         CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\nThreads:\t4\n\
         SigQ:\t0/513469\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
         SigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\nSigCgt:\t0000000180004a02\n\
         CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n\
         Seccomp_filters:\t0\nSpeculation_Store_Bypass:\tthread vulnerable\n\
         SpeculationIndirectBranch:\tconditional enabled\nCpus_allowed:\tffffffff\n\
         Cpus_allowed_list:\t0-31\nMems_allowed:\t00000000,00000001\nMems_allowed_list:\t0\n\
         voluntary_ctxt_switches:\t1543\nnonvoluntary_ctxt_switches:\t27\n"
    );
    put(&dir.join("status"), status.as_bytes());
    let mut cmdline = Vec::new();
    for a in &p.argv {
        cmdline.extend_from_slice(a.as_bytes());
        cmdline.push(0);
    }
    put(&dir.join("cmdline"), &cmdline);
    put(&dir.join("cgroup"), format!("0::{}\n", p.cgroup).as_bytes());
}

/// A host of `n` processes under `root`: a third kernel threads (no command line, `/` cgroup), the
/// rest services and user programs with real-looking command lines and cgroups; pids from 1000.
/// Each process's CPU time is `tick` ticks ahead of its start, so rewriting with another `tick`
/// moves every counter.
pub fn host(root: &Path, n: usize, tick: u64) {
    stat(root, 32, 5_000_000 + tick * 900, 90_000_000 + tick * 2_300);
    uptime(root, 90_000.0 + tick as f64);
    const USERLAND: [(&str, &str, &str); 6] = [
        ("sshd", "sshd: ana@pts/0", "/system.slice/ssh.service"),
        (
            "python3",
            "/home/ana/venv/bin/python3 -u train.py --config configs/llm-7b.yaml --rank 0",
            "/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0",
        ),
        ("bash", "-bash", "/user.slice/user-1000.slice/session-4.scope"),
        (
            "containerd",
            "/usr/bin/containerd",
            "/system.slice/containerd.service",
        ),
        (
            "node",
            "/usr/bin/node /home/bob/.vscode-server/bin/out/server-main.js --start-server",
            "/user.slice/user-1001.slice/session-9.scope",
        ),
        (
            "systemd-journal",
            "/usr/lib/systemd/systemd-journald",
            "/system.slice/systemd-journald.service",
        ),
    ];
    for i in 0..n {
        let pid = 1000 + i as u32;
        let kernel = i % 3 == 0;
        let (comm, argv, cgroup, uid) = if kernel {
            (format!("kworker/{}:{}-events", i % 32, i % 3), Vec::new(), "/", 0)
        } else {
            let (comm, cmd, cg) = USERLAND[i % USERLAND.len()];
            (
                comm.to_string(),
                cmd.split(' ').map(str::to_string).collect(),
                cg,
                if cg.starts_with("/user") { 1000 } else { 0 },
            )
        };
        process(
            root,
            &Proc {
                pid,
                ppid: if kernel { 2 } else { 1 },
                comm: comm.as_bytes(),
                utime: (i as u64 % 97) * 31 + tick,
                stime: (i as u64 % 89) * 7 + tick / 2,
                cutime: 0,
                cstime: 0,
                starttime: 4_000 + i as u64 * 11,
                uid,
                argv,
                cgroup,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::sources::ProcessSource;
    use crate::sources::procfs::ProcFs;

    #[test]
    fn the_procfs_source_reads_the_fixture_host_whole() {
        let dir = tempfile::tempdir().unwrap();
        super::host(dir.path(), 30, 0);
        let mut src = ProcFs::new(dir.path().to_path_buf());
        let a = src.read();
        assert_eq!(a.processes.len(), 30);
        assert_eq!(a.uptime_s, Some(90_000.0));
        assert!(a.cpu_times.is_some());
        let k = a.processes.iter().find(|p| p.key.pid == 1000).unwrap();
        assert_eq!((k.ppid, k.info.uid, k.info.cmdline.as_str()), (2, Some(0), ""));
        assert!(k.info.comm.starts_with("kworker/"));
        let py = a.processes.iter().find(|p| p.key.pid == 1001).unwrap();
        assert_eq!(py.info.cgroup.slurm_job.as_deref(), Some("4242"));
        assert!(
            py.info.cmdline.contains("train.py --config"),
            "{}",
            py.info.cmdline
        );
        let bash = a.processes.iter().find(|p| p.key.pid == 1002).unwrap();
        assert_eq!((bash.info.uid, bash.key.starttime), (Some(1000), 4_022));
        // Rewritten a tick later: every counter moves, the facts stay.
        super::host(dir.path(), 30, 10);
        let b = src.read();
        let moved = a
            .processes
            .iter()
            .zip(&b.processes)
            .filter(|(x, y)| y.cpu_ticks == x.cpu_ticks + 15)
            .count();
        assert_eq!(moved, 30);
    }
}
