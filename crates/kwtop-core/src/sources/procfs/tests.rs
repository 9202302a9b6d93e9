use std::path::Path;

use super::*;

/// Writes a procfs tree in the kernel's real file formats.
pub(crate) struct FakeProc {
    pub dir: tempfile::TempDir,
}

impl FakeProc {
    pub fn new() -> Self {
        let f = FakeProc {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        f.set_stat(0, 0);
        f.set_uptime(1000.0);
        f
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `/proc/stat` with `busy` ticks in user and `idle` in idle (plus zero iowait/irq/softirq).
    pub fn set_stat(&self, busy: u64, idle: u64) {
        let text = format!(
            "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\nintr 0\nctxt 0\nbtime 1700000000\n\
             processes 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
        );
        std::fs::write(self.root().join("stat"), text).expect("stat");
    }

    pub fn set_uptime(&self, s: f64) {
        std::fs::write(self.root().join("uptime"), format!("{s:.2} 1234.00\n")).expect("uptime");
    }

    /// One process, all four files, in the kernel's formats. `comm` may hold any bytes.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per /proc field the tests vary"
    )]
    pub fn add(
        &self,
        pid: u32,
        ppid: u32,
        comm: &[u8],
        utime: u64,
        stime: u64,
        starttime: u64,
        uid: u32,
        cmdline: &[u8],
    ) {
        let d = self.root().join(pid.to_string());
        std::fs::create_dir_all(&d).expect("pid dir");
        let mut stat = format!("{pid} (").into_bytes();
        stat.extend_from_slice(comm);
        stat.extend_from_slice(
            format!(
                ") S {ppid} {pid} {pid} 0 -1 4194304 100 0 0 0 {utime} {stime} 0 0 20 0 1 0 {starttime} 3133440 379 \
                 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            )
            .as_bytes(),
        );
        std::fs::write(d.join("stat"), stat).expect("stat");
        let status = format!(
            "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\n"
        );
        std::fs::write(d.join("status"), status).expect("status");
        std::fs::write(d.join("cmdline"), cmdline).expect("cmdline");
        std::fs::write(
            d.join("cgroup"),
            "0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n",
        )
        .expect("cgroup");
    }

    /// Set cutime and cstime (fields 16 and 17 of `/proc/PID/stat`) of a process added before.
    pub fn set_children(&self, pid: u32, cutime: u64, cstime: u64) {
        let path = self.root().join(pid.to_string()).join("stat");
        let stat = std::fs::read(&path).expect("stat");
        let close = stat.iter().rposition(|b| *b == b')').expect("comm") + 1;
        let rest = String::from_utf8(stat[close..].to_vec()).expect("ascii");
        let mut fields: Vec<String> = rest.split_whitespace().map(String::from).collect();
        // After the comm: field 3 (state) is index 0, so field N is index N − 3.
        fields[13] = cutime.to_string();
        fields[14] = cstime.to_string();
        let mut out = stat[..close].to_vec();
        out.extend_from_slice(format!(" {}\n", fields.join(" ")).as_bytes());
        std::fs::write(path, out).expect("stat");
    }

    pub fn remove(&self, pid: u32) {
        std::fs::remove_dir_all(self.root().join(pid.to_string())).expect("remove");
    }
}

#[test]
fn reads_real_formats() {
    let f = FakeProc::new();
    f.set_stat(600, 400);
    f.add(
        42,
        1,
        b"python3",
        70,
        30,
        5000,
        0,
        b"python3\0train.py\0--epochs\x0010\0",
    );
    let mut src = ProcFs::new(f.root().to_path_buf());
    let s = src.read();
    assert_eq!(s.cpu_times, Some(CpuTimes { busy: 600, idle: 400 }));
    assert_eq!(s.uptime_s, Some(1000.0));
    assert_eq!(s.processes.len(), 1);
    let p = &s.processes[0];
    assert_eq!(
        p.key,
        ProcKey {
            pid: 42,
            starttime: 5000
        }
    );
    assert_eq!(p.cpu_ticks, 100);
    assert_eq!(p.ppid, 1);
    assert_eq!(p.info.comm, "python3");
    assert_eq!(p.info.cmdline, "python3 train.py --epochs 10");
    assert_eq!(p.info.uid, Some(0));
    assert_eq!(p.info.user, "root");
    assert_eq!(p.info.cgroup.slurm_job.as_deref(), Some("4242"));
}

#[test]
fn waited_for_children_ticks_are_cutime_plus_cstime() {
    let f = FakeProc::new();
    // A comm with a ')' and spaces must not shift the fields after it.
    f.add(42, 1, b"make) -j 8", 70, 30, 5000, 0, b"make\0-j8\0");
    f.add(43, 42, b"cc1", 3, 1, 5100, 0, b"cc1\0");
    f.set_children(42, 1234, 567);
    let mut src = ProcFs::new(f.root().to_path_buf());
    let s = src.read();
    let get = |pid: u32| s.processes.iter().find(|p| p.key.pid == pid).expect("listed");
    assert_eq!(get(42).cpu_ticks, 100, "own time unchanged");
    assert_eq!(get(42).child_ticks, 1801);
    assert_eq!(get(43).child_ticks, 0);
}

#[test]
fn hostile_names_are_sanitized_at_the_source() {
    let f = FakeProc::new();
    // A comm with a closing paren and spaces, an OSC title change and a bidi override.
    f.add(
        7,
        1,
        b"evil) (x \x1b]0;pwned\x07",
        1,
        1,
        10,
        0,
        b"\x1b[2J\xe2\x80\xaerm -rf\0\xff\xfe",
    );
    let mut src = ProcFs::new(f.root().to_path_buf());
    let s = src.read();
    let p = &s.processes[0];
    assert!(
        !p.info.comm.contains('\x1b') && !p.info.comm.contains('\x07'),
        "{:?}",
        p.info.comm
    );
    assert!(p.info.comm.starts_with("evil) (x "), "{:?}", p.info.comm);
    assert!(
        !p.info.cmdline.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{:?}",
        p.info.cmdline
    );
    assert_eq!(p.cpu_ticks, 2, "fields after the last ')' are parsed correctly");
}

#[test]
fn exit_between_samples_and_pid_reuse() {
    let f = FakeProc::new();
    f.add(10, 1, b"a", 5, 0, 100, 0, b"a\0");
    f.add(11, 1, b"b", 5, 0, 100, 0, b"b\0");
    let mut src = ProcFs::new(f.root().to_path_buf());
    assert_eq!(src.read().processes.len(), 2);
    f.remove(11);
    f.remove(10);
    f.add(10, 1, b"reused", 1, 0, 900, 0, b"reused\0");
    let s = src.read();
    assert_eq!(s.processes.len(), 1);
    assert_eq!(
        s.processes[0].key,
        ProcKey {
            pid: 10,
            starttime: 900
        }
    );
    assert_eq!(
        s.processes[0].info.comm, "reused",
        "static info is per (pid, starttime), not per pid"
    );
}

#[test]
fn static_info_is_read_once_per_process() {
    let f = FakeProc::new();
    f.add(5, 1, b"x", 1, 0, 100, 0, b"first\0");
    let mut src = ProcFs::new(f.root().to_path_buf());
    let a = src.read();
    std::fs::write(f.root().join("5/cmdline"), b"changed\0").expect("write");
    let b = src.read();
    assert!(Arc::ptr_eq(&a.processes[0].info, &b.processes[0].info));
    assert_eq!(b.processes[0].info.cmdline, "first");
}

/// Processes of one cgroup share one copy of it; a cgroup nobody is in any more is forgotten.
#[test]
fn one_cgroup_copy_per_cgroup() {
    let f = FakeProc::new();
    f.add(5, 1, b"a", 1, 0, 100, 0, b"a\0");
    f.add(6, 1, b"b", 1, 0, 100, 0, b"b\0");
    f.add(7, 1, b"c", 1, 0, 100, 0, b"c\0");
    std::fs::write(f.root().join("7/cgroup"), "0::/user.slice/session-1.scope\n").expect("cgroup");
    let mut src = ProcFs::new(f.root().to_path_buf());
    let s = src.read();
    let cg = |pid: u32| {
        Arc::clone(
            &s.processes
                .iter()
                .find(|p| p.key.pid == pid)
                .expect("pid")
                .info
                .cgroup,
        )
    };
    assert!(Arc::ptr_eq(&cg(5), &cg(6)));
    assert!(!Arc::ptr_eq(&cg(5), &cg(7)));
    assert_eq!(cg(7).path, "/user.slice/session-1.scope");
    assert_eq!(cg(5).slurm_job.as_deref(), Some("4242"));
    assert_eq!(src.cgroups.len(), 2);
    drop(s);
    // Enough processes gone for the static facts to be pruned: 7's cgroup goes with them.
    f.remove(7);
    for pid in 100..200 {
        f.add(pid, 1, b"n", 1, 0, 100, 0, b"n\0");
    }
    src.read();
    for pid in 100..200 {
        f.remove(pid);
    }
    let s = src.read();
    assert_eq!(s.processes.len(), 2);
    assert_eq!(src.cgroups.len(), 1, "only the shared job cgroup is left");
}

#[test]
fn exec_rereads_static_info() {
    let f = FakeProc::new();
    f.add(5, 1, b"bash", 1, 0, 100, 0, b"bash\0");
    let mut src = ProcFs::new(f.root().to_path_buf());
    assert_eq!(src.read().processes[0].info.comm, "bash");
    // Same pid and starttime after exec: new comm and command line.
    f.add(5, 1, b"python3", 2, 0, 100, 0, b"python3\0train.py\0");
    let s = src.read();
    assert_eq!(s.processes[0].info.comm, "python3");
    assert_eq!(s.processes[0].info.cmdline, "python3 train.py");
}

#[test]
fn missing_root_is_a_notice_not_a_panic() {
    let mut src = ProcFs::new("/nonexistent/kwtop-proc".into());
    let s = src.read();
    assert!(s.processes.is_empty());
    assert!(s.cpu_times.is_none());
    let n = src.take_notices();
    assert_eq!(n.len(), 1);
    assert!(n[0].contains("/nonexistent/kwtop-proc"), "{n:?}");
}

#[test]
fn garbage_stat_is_skipped() {
    let f = FakeProc::new();
    f.add(5, 1, b"ok", 1, 0, 100, 0, b"ok\0");
    std::fs::create_dir_all(f.root().join("6")).expect("dir");
    std::fs::write(f.root().join("6/stat"), "garbage").expect("write");
    std::fs::write(f.root().join("stat"), "nonsense\n").expect("write");
    let mut src = ProcFs::new(f.root().to_path_buf());
    let s = src.read();
    assert_eq!(s.processes.len(), 1);
    assert_eq!(s.cpu_times, None);
}

#[test]
fn stat_fields_are_taken_after_the_last_paren() {
    // A real line of Linux 6.x (a workqueue worker's long name), and a hostile name.
    let line =
        b"13709 (kworker/u8:0-ext4-rsv-conversion) I 2 0 0 0 -1 69238880 0 0 0 0 12 345 6 -7 20 0 1 0 \
        4242 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    let s = parse_stat(line).expect("parses");
    assert_eq!(s.comm, b"kworker/u8:0-ext4-rsv-conversion");
    assert_eq!(
        (s.ppid, s.utime, s.stime, s.cutime, s.cstime, s.starttime),
        (2, 12, 345, 6, -7, 4242)
    );
    let evil = b"7 (a) (b) 99 ) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 55 0 0\n";
    let s = parse_stat(evil).expect("parses");
    assert_eq!(s.comm, b"a) (b) 99 ");
    assert_eq!((s.ppid, s.utime, s.stime, s.starttime), (1, 1, 2, 55));
    assert_eq!(parse_stat(b"7 (x) R 1 2 3"), None, "cut short");
    assert_eq!(parse_stat(b"7 )x( R"), None);
    assert_eq!(
        parse_stat(b"7 (x) R 1 7 7 0 -1 0 0 0 0 0 1x 2 3 4 20 0 1 0 55"),
        None,
        "not a number"
    );
    assert_eq!(
        (uint(b"18446744073709551615"), uint(b"18446744073709551616")),
        (Some(u64::MAX), None)
    );
    assert_eq!(
        (int(b"-5"), int(b"5"), int(b"-"), int(b"")),
        (Some(-5), Some(5), None, None)
    );
}

#[test]
fn machine_cpu_time_is_the_first_cpu_line() {
    let text = b"cpu  100 20 30 1000 40 5 6 7 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nintr 123 4 5\n";
    assert_eq!(
        parse_cpu_line(text),
        Some(CpuTimes {
            busy: 100 + 20 + 30 + 5 + 6,
            idle: 1000 + 40
        })
    );
    // Kernels before 2.6: four fields.
    assert_eq!(
        parse_cpu_line(b"cpu 1 2 3 4\n"),
        Some(CpuTimes { busy: 6, idle: 4 })
    );
    assert_eq!(parse_cpu_line(b"cpu0 1 2 3 4\nintr 1\n"), None);
    assert_eq!(parse_cpu_line(b"cpu  1 2 x 4\n"), None);
}
