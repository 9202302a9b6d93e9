#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real Prometheus (Debian's `prometheus` package) scrapes `kwtop serve` on loopback every second.
//! kwtop samples a fixture /proc + powercap tree whose counters a thread advances (1 J and 5 CPU
//! ticks per step), so a process's energy grows; then the fixture stops and the device total
//! settles at exactly the energy written. Through Prometheus's HTTP API the test checks that the
//! per-process energy series increased across scrapes and that the stored device energy equals
//! both the fixture's arithmetic and kwtop's own `/metrics` value. A thread appends `step N` to a
//! log that kwtop follows (`--progress-log`, the busy process's tree): the work series and the
//! dashboard's joules-per-step query are checked against the fixture's 0.8 J per step.

mod serve_support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::{BUSY_PID, Fixture, STEP_UJ, Serve, Ticker, get, value};

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn start_prometheus(target: SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: kwtop\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let addr = free_loopback_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus not found: apt-get install prometheus");
    Prometheus {
        child,
        addr,
        _dir: dir,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `result` of an instant query, or `None` while Prometheus is not answering yet.
fn query(p: &Prometheus, promql: &str) -> Option<Vec<Value>> {
    let (status, body) = get(p.addr, &format!("/api/v1/query?query={}", urlencode(promql)));
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].as_array().cloned()
}

/// Poll `f` until it returns `Some`, failing after `secs` seconds with `what`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250)); // real-time: Prometheus scrapes on its own 1 s clock
    }
}

/// Appends `step N` to a log every `period` until stopped.
struct StepWriter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl StepWriter {
    fn start(log: std::path::PathBuf, period: Duration) -> Self {
        use std::io::Write;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut n = 0;
            while !s2.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(period); // real-time: a training loop that kwtop watches
                n += 1;
                writeln!(f, "step {n} loss 0.1").unwrap();
            }
            n
        });
        StepWriter {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn sample_values(series: &Value) -> Vec<f64> {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
#[ignore = "needs prometheus"]
fn prometheus_scrapes_kwtop_serve() {
    let fixture = Arc::new(Fixture::new());
    let log = fixture.dir.path().join("train.log");
    std::fs::write(&log, "step 0\n").unwrap();
    let pid = BUSY_PID.to_string();
    let log_arg = log.display().to_string();
    let work_args = [
        "--progress-log",
        &log_arg,
        "--progress",
        r"step (\d+)",
        "--unit",
        "step",
        "--pid",
        &pid,
    ];
    let serve = Serve::start_with(&fixture.config(), "200ms", &work_args);
    let ticker = Ticker::start(Arc::clone(&fixture), Duration::from_millis(100));
    let steps = StepWriter::start(log, Duration::from_millis(100));
    let prom = start_prometheus(serve.addr);

    wait_for(60, "Prometheus to scrape kwtop (up == 1)", || {
        let r = query(&prom, "up{job=\"kwtop\"}")?;
        (r.first()?["value"][1].as_str()? == "1").then_some(())
    });

    // A per-process energy series that increases over at least two scrapes.
    let selector = format!("kwtop_process_energy_joules_total{{pid=\"{pid}\",device=\"cpu0\"}}[1m]");
    let values = wait_for(60, "two increasing scrapes of the busy process's energy", || {
        let r = query(&prom, &selector)?;
        let v = sample_values(r.first()?);
        (v.len() >= 2 && v[v.len() - 1] > v[0]).then_some(v)
    });
    assert!(
        values.windows(2).all(|w| w[1] >= w[0]),
        "energy counter went down: {values:?}"
    );
    // irate: the last two scrapes (rate() would divide by the whole 1m window while it is not full).
    let rate = wait_for(30, "a positive irate()", || {
        let r = query(&prom, &format!("irate({selector})"))?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        (v > 0.0).then_some(v)
    });
    // The fixture gives the busy process 4 of 5 busy ticks of a 10 W package.
    assert!(
        rate > 1.0 && rate < 20.0,
        "busy process rate {rate} W, values {values:?}"
    );

    // Energy per unit of work: the busy tree draws 8 W (4 of 5 ticks of 10 W) while the log gains
    // 10 steps a second, both on their own 100 ms clocks: about 0.8 J per step.
    let per_step = wait_for(60, "joules per step from the work counters", || {
        let r = query(
            &prom,
            "sum by (unit) (rate(kwtop_work_energy_joules_total[30s])) / sum by (unit) (rate(kwtop_work_units_total[30s]))",
        )?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        (r.first()?["metric"]["unit"].as_str()? == "step" && v.is_finite()).then_some(v)
    });
    assert!(
        (0.4..1.6).contains(&per_step),
        "J per step {per_step}, fixture 0.8"
    );
    let text = serve.metrics();
    let units = value(&text, "kwtop_work_units_total", &[("unit", "step")]).unwrap();
    let joules = value(
        &text,
        "kwtop_work_energy_joules_total",
        &[("unit", "step"), ("scope", "tree")],
    )
    .unwrap();
    assert!(units > 0.0 && joules > 0.0, "{units} steps, {joules} J");
    assert_eq!(value(&text, "kwtop_work_up", &[("unit", "step")]), Some(1.0));
    let written = steps.stop();
    eprintln!(
        "work: {per_step:.3} J per step in Prometheus; kwtop: {units} steps, {joules:.2} J ({:.3} J/step); \
         {written} steps written",
        joules / units
    );

    // Stop the machine: the device total settles at exactly the energy the fixture added.
    let steps = ticker.stop();
    let expected_j = (steps * STEP_UJ) as f64 / 1e6;
    let own = wait_for(30, "kwtop's device energy to settle", || {
        let v = value(
            &serve.metrics(),
            "kwtop_device_energy_joules_total",
            &[("device", "cpu0")],
        )?;
        ((v - expected_j).abs() < 1e-6).then_some(v)
    });
    let stored = wait_for(30, "Prometheus to store the settled device energy", || {
        let r = query(&prom, "kwtop_device_energy_joules_total{device=\"cpu0\"}")?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        ((v - own).abs() <= 1e-9 * own.max(1.0)).then_some(v)
    });
    eprintln!(
        "busy process energy over scrapes: {values:?}; rate {rate:.3} W; device energy: fixture {expected_j} J, \
         kwtop {own} J, Prometheus {stored} J"
    );

    // Energy is conserved in what Prometheus stored: processes + idle + unattributed = device.
    let parts = wait_for(30, "the sum of the parts", || {
        let r = query(
            &prom,
            "sum(kwtop_process_energy_joules_total{device=\"cpu0\"}) + sum(kwtop_idle_energy_joules_total{device=\"cpu0\"}) \
             + sum(kwtop_unattributed_energy_joules_total{device=\"cpu0\"})",
        )?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        ((v - stored).abs() < 1e-6 * stored).then_some(v)
    });
    assert!((parts - stored).abs() < 1e-6 * stored);

    // Every query of the Grafana dashboard is valid PromQL and finds data here.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/grafana/kwtop.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m");
            let result = query(&prom, &expr)
                .unwrap_or_else(|| panic!("panel {:?}: Prometheus rejected {expr}", panel["title"]));
            let idle_panel = expr.contains("idle_holder{") || expr.contains("idle_holder_seconds");
            assert!(
                idle_panel || !result.is_empty(),
                "panel {:?}: no data for {expr}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} dashboard queries");
}
