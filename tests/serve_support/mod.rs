//! Shared by the `serve_*` integration tests: a fixture /proc + powercap tree in the kernel's
//! formats that a background thread can advance, a `kwtop serve` child on a loopback port, and a
//! tiny HTTP/1.0 GET client (no HTTP client crate is a dependency).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Energy counter at start, µJ.
pub const E0_UJ: u64 = 1_000_000_000;
/// Energy added per step, µJ (1 J).
pub const STEP_UJ: u64 = 1_000_000;
/// The busy process and the one with a hostile name.
pub const BUSY_PID: u32 = 4242;
pub const HOSTILE_PID: u32 = 4243;
/// A comm with a quote, backslash, newline, escape sequence, BEL and a bidi override.
pub const HOSTILE_COMM: &[u8] = b"ev\"il\\na\nme\x1b[31m\x07\xe2\x80\xae";

/// Replace a file atomically (kwtop may be reading it).
fn put(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A /proc and /sys/class/powercap tree, plus a config file pointing kwtop at them.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(f.proc_root()).unwrap();
        let zone = f.powercap_root().join("intel-rapl:0");
        std::fs::create_dir_all(f.powercap_root().join("intel-rapl")).unwrap();
        std::fs::create_dir_all(&zone).unwrap();
        put(&zone.join("name"), b"package-0\n");
        put(&zone.join("max_energy_range_uj"), b"262143328850\n");
        put(&zone.join("enabled"), b"1\n");
        f.set(0);
        let cfg = format!(
            "[sources]\nproc_root = \"{}\"\npowercap_root = \"{}\"\nnvml = false\n\n[impact]\ngrid = \"DE\"\n",
            f.proc_root().display(),
            f.powercap_root().display()
        );
        std::fs::write(f.config(), cfg).unwrap();
        f
    }

    pub fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    pub fn powercap_root(&self) -> PathBuf {
        self.dir.path().join("powercap")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("kwtop.toml")
    }

    fn process(&self, pid: u32, comm: &[u8], ticks: u64) {
        let d = self.proc_root().join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let mut stat = format!("{pid} (").into_bytes();
        stat.extend_from_slice(comm);
        stat.extend_from_slice(
            format!(
                ") S 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {ticks} 0 0 0 20 0 1 0 100 3133440 379 \
                 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            )
            .as_bytes(),
        );
        put(&d.join("stat"), &stat);
        put(
            &d.join("status"),
            format!("Name:\tx\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
                .as_bytes(),
        );
        let mut cmdline = comm.to_vec();
        cmdline.extend_from_slice(b"\0--token=\"x\\y\"\0");
        put(&d.join("cmdline"), &cmdline);
        put(
            &d.join("cgroup"),
            b"0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n",
        );
    }

    /// The state after `step` steps: energy E0 + step J; the busy process got 4 ticks per step,
    /// the hostile one 1; the whole CPU was busy.
    pub fn set(&self, step: u64) {
        let root = self.proc_root();
        let busy = 5 * step;
        put(
            &root.join("stat"),
            format!(
                "cpu  {busy} 0 0 0 0 0 0 0 0 0\ncpu0 {busy} 0 0 0 0 0 0 0 0 0\nintr 0\nctxt 0\nbtime 1700000000\n\
                 processes 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
            )
            .as_bytes(),
        );
        put(
            &root.join("uptime"),
            format!("{:.2} 1.00\n", 1000.0 + step as f64).as_bytes(),
        );
        self.process(BUSY_PID, b"train", 4 * step);
        self.process(HOSTILE_PID, HOSTILE_COMM, step);
        put(
            &self.powercap_root().join("intel-rapl:0/energy_uj"),
            format!("{}\n", E0_UJ + step * STEP_UJ).as_bytes(),
        );
    }
}

/// Advances a fixture every `period` until stopped; `steps()` tells how far it got.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Ticker {
    pub fn start(fixture: Arc<Fixture>, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut step = 0;
            while !s2.load(Ordering::SeqCst) {
                std::thread::sleep(period); // real-time: the fixture plays a machine whose counters move while kwtop samples it
                step += 1;
                fixture.set(step);
            }
            step
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop and return the last step written.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A `kwtop serve` child; killed on drop.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<std::sync::Mutex<String>>,
}

impl Serve {
    pub fn start(config: &Path, interval: &str) -> Self {
        Self::start_with(config, interval, &[])
    }

    /// With more arguments for `serve` (e.g. `--progress-log FILE`).
    pub fn start_with(config: &Path, interval: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kwtop"))
            .args(["--config"])
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", interval])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(rest) = line.trim().strip_prefix("kwtop: serving http://") {
                    let _ = tx.send(rest.trim_end_matches("/metrics").to_string());
                }
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            panic!(
                "kwtop serve did not report its address: {}",
                stderr.lock().unwrap()
            )
        });
        let s = Serve {
            child,
            addr: addr.parse().unwrap(),
            stderr,
        };
        // Wait for the first sample (503 until then).
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(s.addr, "/metrics").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "no metrics: {}",
                s.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50)); // real-time: polling a real server
        }
        s
    }

    pub fn metrics(&self) -> String {
        let (status, body) = get(self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.0; returns (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// Value of the first sample of `name` whose labels contain every `k="v"` matcher.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| v.parse().ok())
            .flatten()
    })
}

/// Run `promtool check metrics` on `text`; returns (success, output).
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install prometheus");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}
