use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::{self, Responder, Response};
use super::metrics::{self, Exporter, MetricsView};
use super::*;
use crate::sample::Sample;
use crate::sample::{DeviceKind, DeviceReading, ProcessReading};
use crate::testing;

fn proc(pid: u32, ticks: u64, comm: &str) -> ProcessReading {
    testing::process(pid, 7, ticks).comm(comm).user("ana").build()
}

fn cpu(uj: u64) -> DeviceReading {
    testing::counter("cpu0", DeviceKind::Cpu, "package-0", uj)
}

fn sample(t: f64, busy: u64, procs: Vec<ProcessReading>, devices: Vec<DeviceReading>) -> Sample {
    testing::sample_at(t)
        .wall_origin_ms(1_700_000_000_000)
        .uptime_origin(10_000.0)
        .cpu(busy, 0)
        .procs(procs)
        .devices(devices)
        .build()
}

/// Series value by metric name and a few label matchers, from the exposition text.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| v.parse().ok())
            .flatten()
    })
}

fn render(view: MetricsView) -> String {
    let mut out = String::new();
    metrics::encode(&mut out, Arc::new(view)).unwrap();
    out
}

/// Three processes swap ranks with top N = 1: the shown series and `other` only grow, and per
/// device the increases add up to the device's increase.
#[test]
fn counters_stay_monotonic_when_the_top_n_changes() {
    let mut engine = Engine::new(&EngineParams::default());
    let mut ex = Exporter::new(1);
    // (a, b, c) cumulative ticks; busy = sum, so all active energy is attributed.
    let ticks = [
        (0, 0, 0),
        (90, 10, 0),
        (100, 100, 0),
        (100, 300, 50),
        (400, 300, 60),
        (400, 300, 60),
    ];
    let mut last_other = 0.0;
    let mut last_shown: std::collections::HashMap<String, f64> = Default::default();
    let mut sum_incr = 0.0;
    let mut prev_total = 0.0;
    for (i, &(a, b, c)) in ticks.iter().enumerate() {
        let mut procs = vec![proc(1, a, "a"), proc(2, b, "b"), proc(3, c, "c")];
        if i == 5 {
            procs.remove(0); // a exits
        }
        let uj = (a + b + c) * 10_000;
        engine.push(sample(i as f64, a + b + c, procs, vec![cpu(uj)]));
        let view = ex.update(&engine, &ImpactParams::default());
        let text = render(view.clone());
        let other = value(&text, "kwtop_process_energy_joules_total", &[("pid", "other")]).unwrap();
        assert!(
            other >= last_other - 1e-12,
            "other decreased at {i}: {last_other} -> {other}"
        );
        sum_incr += other - last_other;
        last_other = other;
        for l in view.labels.iter().filter(|l| l.pid != "other") {
            let v = value(&text, "kwtop_process_energy_joules_total", &[("pid", &l.pid)]).unwrap();
            let before = last_shown.get(&l.pid).copied();
            if let Some(b) = before {
                assert!(v >= b, "pid {} decreased", l.pid);
                sum_incr += v - b;
            } else {
                sum_incr += v;
            }
            last_shown.insert(l.pid.clone(), v);
        }
        let shown = view.labels.iter().filter(|l| l.pid != "other").count();
        assert!(shown <= 1, "top 1 exported {shown} processes");
        let total = value(&text, "kwtop_device_energy_joules_total", &[("device", "cpu0")]).unwrap();
        assert!(total >= prev_total);
        prev_total = total;
    }
    // Every joule was counted once, in one series: shown (from its first value) or other.
    assert!(prev_total > 0.0);
    assert!(
        (sum_incr - prev_total).abs() < 1e-6 * prev_total,
        "{sum_incr} vs {prev_total}"
    );
}

#[test]
fn process_series_equals_its_session_energy_when_always_shown() {
    let mut engine = Engine::new(&EngineParams::default());
    let mut ex = Exporter::new(50);
    for (i, t) in [0u64, 50, 100].iter().enumerate() {
        engine.push(sample(
            i as f64,
            *t * 2,
            vec![proc(10, *t, "x"), proc(11, *t, "y")],
            vec![cpu(t * 20_000)],
        ));
        ex.update(&engine, &ImpactParams::default());
    }
    let text = render(ex.update(&engine, &ImpactParams::default()));
    let e = engine
        .ledger
        .running()
        .find(|e| e.key.pid == 10)
        .unwrap()
        .energy_j;
    let v = value(
        &text,
        "kwtop_process_energy_joules_total",
        &[("pid", "10"), ("device", "cpu0")],
    )
    .unwrap();
    assert!((v - e).abs() < 1e-9, "{v} vs {e}");
    assert!(e > 0.0);
    let w = value(&text, "kwtop_process_power_watts", &[("pid", "10")]).unwrap();
    assert!(w >= 0.0);
}

#[test]
fn exposition_has_the_documented_families_and_escapes_hostile_labels() {
    let mut engine = Engine::new(&EngineParams::default());
    let mut ex = Exporter::new(5);
    let hostile = "a\"b\\c\nd\u{1b}[31mred\u{7}";
    let mut gpu = DeviceReading::new("gpu0", DeviceKind::Gpu, "H100 \"fake\"");
    gpu.vendor = Some("AMD".into());
    gpu.source = Some("hwmon power".into());
    gpu.power_w = Some(100.0);
    gpu.gpu_processes = vec![testing::holder(20, 1 << 30, Some(0.0))];
    for i in 0..3u64 {
        engine.push(sample(
            i as f64,
            i * 10,
            vec![proc(20, i * 10, hostile)],
            vec![gpu.clone(), cpu(i * 1_000_000)],
        ));
    }
    let text = render(ex.update(&engine, &ImpactParams::default()));
    for fam in [
        "kwtop_device_power_watts",
        "kwtop_device_energy_joules_total",
        "kwtop_process_power_watts",
        "kwtop_process_energy_joules_total",
        "kwtop_idle_energy_joules_total",
        "kwtop_unattributed_energy_joules_total",
        "kwtop_co2e_grams_total",
        "kwtop_grid_intensity_grams_per_kwh",
        "kwtop_idle_holder_wasted_joules_total",
        "kwtop_device_info",
    ] {
        assert!(
            text.contains(&format!("\n{fam}")) || text.starts_with(fam),
            "{fam} missing:\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE kwtop_device_energy_joules_total counter"),
        "{text}"
    );
    // One line per sample: no raw newline, quote or escape byte inside a label value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains('\u{1b}') && !line.contains('\u{7}'), "{line:?}");
        let (_, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap();
    }
    assert!(text.contains("pid=\"20\""), "{text}");
    // Vendor and source once per device, on the info series only (other series keep their labels).
    let info = value(
        &text,
        "kwtop_device_info",
        &[("device", "gpu0"), ("vendor", "AMD"), ("source", "hwmon power")],
    );
    assert_eq!(info, Some(1.0), "{text}");
    assert_eq!(
        text.matches("kwtop_device_info{").count(),
        2,
        "one series per device"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("kwtop_device_power_watts") && l.contains("vendor="))
    );
    assert!(text.contains("name=\"H100 \\\"fake\\\"\""), "{text}");
}

#[test]
fn sanitized_label_keeps_quotes_and_backslashes_escaped() {
    let view = MetricsView {
        labels: vec![metrics::ProcLabels {
            pid: "1".into(),
            command: "q\"b\\n".into(),
            ..Default::default()
        }],
        devices: vec![metrics::DeviceRow {
            id: "cpu0".into(),
            kind: "cpu",
            name: "p".into(),
            vendor: String::new(),
            source: String::new(),
            provenance: "measured",
            power_w: Some(1.0),
            power_limit_w: None,
            energy_j: 1.0,
            idle_j: 0.0,
            unattributed_j: 0.0,
            up: true,
        }],
        processes: vec![metrics::ProcRow {
            labels: 0,
            device: 0,
            energy_j: 1.0,
            power_w: 1.0,
        }],
        ..Default::default()
    };
    let text = render(view);
    assert!(text.contains("command=\"q\\\"b\\\\n\""), "{text}");
}

struct Fixed;

impl Responder for Fixed {
    fn metrics(&self) -> Response {
        Response::new(200, "text/plain", "m 1\n")
    }
}

fn request(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = s.write_all(raw);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn routes_only_get_metrics_and_index() {
    assert_eq!(http::route("GET", "/metrics", &Fixed).status, 200);
    assert_eq!(http::route("GET", "/metrics?x=1", &Fixed).status, 200);
    assert_eq!(http::route("HEAD", "/", &Fixed).status, 200);
    assert!(http::route("GET", "/", &Fixed).body.contains("/metrics"));
    assert_eq!(http::route("GET", "/metricsx", &Fixed).status, 404);
    assert_eq!(http::route("GET", "/../etc/passwd", &Fixed).status, 404);
    let r = http::route("POST", "/metrics", &Fixed);
    assert_eq!(r.status, 405);
    assert!(r.headers.contains(&("allow", "GET, HEAD")));
    assert_eq!(http::route("DELETE", "/", &Fixed).status, 405);
}

#[test]
fn server_answers_and_bounds_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut server = http::Server::start(listener, Arc::new(Fixed)).unwrap();
    let addr = server.local_addr();
    let ok = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nm 1\n"), "{ok}");
    for header in [
        "Content-Type: text/plain\r\n",
        "Content-Length: 4\r\n",
        "Connection: close\r\n",
    ] {
        assert!(ok.contains(header), "{header:?} missing: {ok}");
    }
    let old = request(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.") && old.contains(" 200 OK\r\n"), "{old}");
    let head = request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 4\r\n"), "{head}");
    assert!(request(addr, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    let put = request(addr, b"PUT /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert!(put.starts_with("HTTP/1.1 405"), "{put}");
    assert!(put.contains("\r\nAllow: GET, HEAD\r\n"), "{put}");
    assert!(request(addr, b"garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', http::MAX_HEAD_BYTES + 2048));
    assert!(request(addr, &big).starts_with("HTTP/1.1 431"));
    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..http::MAX_HEAD_BYTES / 16 {
        many.extend(format!("X-{i:05}: abcdef\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let many = request(addr, &many);
    assert!(many.starts_with("HTTP/1.1 431"), "{many}");
    server.shutdown();
}

/// Limits with a short head deadline and a small cap, so the bounds show within a test.
fn tight(max_connections: usize) -> http::Limits {
    http::Limits {
        head_deadline: Duration::from_millis(300),
        connection_deadline: Duration::from_secs(5),
        max_connections,
    }
}

/// Reads until the server closes the connection; the time that took and what came back.
fn until_closed(s: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection still open after {:?}: {e}", start.elapsed()),
        }
    }
    (start.elapsed(), got)
}

#[test]
fn a_client_too_slow_with_its_head_is_closed_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let limits = tight(64);
    let mut server = http::Server::start_with(listener, Arc::new(Fixed), limits).unwrap();
    let addr = server.local_addr();
    // Half a head, then silence.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A byte every 50 ms: progress does not extend the deadline.
    let mut drip = TcpStream::connect(addr).unwrap();
    let dripping = std::thread::spawn(move || {
        for &b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if drip.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50)); // real-time: a slowloris client
        }
        drip
    });
    let (after, got) = until_closed(&mut half);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    let mut drip = dripping.join().unwrap();
    let (_, got) = until_closed(&mut drip);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // A prompt client is still answered.
    assert!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    server.shutdown();
}

/// Connections held half-open beyond the cap evict the oldest instead of locking scrapes out.
#[test]
fn half_open_connections_beyond_the_cap_evict_the_oldest_not_the_scrape() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut limits = tight(8);
    limits.head_deadline = Duration::from_secs(60);
    limits.connection_deadline = Duration::from_secs(60);
    let mut server = http::Server::start_with(listener, Arc::new(Fixed), limits).unwrap();
    let addr = server.local_addr();
    let mut held: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let r = request(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The oldest were closed unanswered; the newest (cap - 1, beside the scrape) are still open.
    let (after, got) = until_closed(&mut held[0]);
    assert!(got.is_empty());
    assert!(
        after < Duration::from_secs(2),
        "oldest closed only after {after:?}"
    );
    let newest = held.last_mut().unwrap();
    newest.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let e = newest.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    server.shutdown();
}

#[test]
fn listen_addresses() {
    assert!(parse_listen("127.0.0.1:9875").is_ok());
    assert!(parse_listen("[::1]:9875").is_ok());
    assert!(parse_listen("localhost:9875").is_err());
    assert!(exposure_warning(&parse_listen("127.0.0.1:1").unwrap()).is_none());
    assert!(exposure_warning(&parse_listen("[::1]:1").unwrap()).is_none());
    assert!(exposure_warning(&parse_listen("0.0.0.0:1").unwrap()).is_some());
}

#[test]
fn endpoint_answers_503_before_the_first_update_then_metrics() {
    let mut ep = Endpoint::start(parse_listen("127.0.0.1:0").unwrap(), 5, ImpactParams::default()).unwrap();
    let addr = ep.local_addr();
    assert!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
    let mut engine = Engine::new(&EngineParams::default());
    engine.push(sample(0.0, 0, vec![proc(1, 0, "a")], vec![cpu(0)]));
    ep.update(&engine);
    let r = request(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
    assert!(r.contains("kwtop_scrape_duration_seconds "), "{r}");
    assert!(
        r.contains("kwtop_device_energy_joules_total{device=\"cpu0\""),
        "{r}"
    );
}

/// The documented deadlines on tokio's paused clock: the server runs on the test's runtime, time
/// jumps whenever every task waits, so the real 5 s and 15 s bounds are checked in microseconds and
/// without depending on how loaded the machine is.
#[tokio::test(start_paused = true)]
async fn head_deadline_holds_on_the_paused_clock_and_a_scrape_is_not_delayed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let limits = http::Limits {
        head_deadline: http::HEAD_DEADLINE,
        connection_deadline: http::CONNECTION_DEADLINE,
        max_connections: 8,
    };
    tokio::spawn(http::accept_loop(listener, Arc::new(Fixed), limits, stopped));

    // Half a request head, then nothing: closed unanswered at the head deadline.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    // A whole request meanwhile is answered at once (no virtual time passes for it).
    let mut scrape = tokio::net::TcpStream::connect(addr).await.unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    scrape.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(t0.elapsed() < Duration::from_millis(100), "{:?}", t0.elapsed());

    let mut rest = Vec::new();
    // Bounded, so that a missing deadline fails here instead of hanging the test.
    let closed = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the half-open connection was never closed");
    let waited = t0.elapsed();
    assert!(
        rest.is_empty(),
        "a half head gets no answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        waited >= http::HEAD_DEADLINE && waited < http::HEAD_DEADLINE + Duration::from_secs(1),
        "closed after {waited:?}, deadline {:?}",
        http::HEAD_DEADLINE
    );
}

#[test]
fn price_and_cost_are_exported_only_with_a_price() {
    let encode = |price: Option<(String, f64, f64)>| {
        let mut out = String::new();
        let view = MetricsView {
            price,
            ..Default::default()
        };
        metrics::encode(&mut out, Arc::new(view)).unwrap();
        out
    };
    let none = encode(None);
    assert!(
        !none.contains("kwtop_cost") && !none.contains("price_per_kwh"),
        "{none}"
    );
    let t = encode(Some(("EUR".into(), 0.25, 1.5)));
    assert!(t.contains("# TYPE kwtop_cost_total counter\n"), "{t}");
    assert!(t.contains("kwtop_cost_total{currency=\"EUR\"} 1.5\n"), "{t}");
    assert!(
        t.contains("kwtop_electricity_price_per_kwh{currency=\"EUR\"} 0.25\n"),
        "{t}"
    );
}

#[test]
fn the_cost_series_is_facility_energy_times_the_price() {
    let impact = ImpactParams {
        pue: 1.5,
        price: Some(crate::impact::Price {
            per_kwh: 0.2,
            currency: "EUR".into(),
        }),
        ..ImpactParams::default()
    };
    let mut engine = crate::engine::Engine::new(&crate::engine::EngineParams::default());
    engine.push(sample(0.0, 0, vec![proc(7, 0, "a")], vec![cpu(0)]));
    // 360 J in 1 s: 1e-4 kWh IT, 1.5e-4 kWh facility, 3e-5 EUR.
    engine.push(sample(1.0, 100, vec![proc(7, 100, "a")], vec![cpu(360_000_000)]));
    let view = Exporter::new(5).update(&engine, &impact);
    let (cur, per, cost) = view.price.clone().expect("price");
    assert_eq!((cur.as_str(), per), ("EUR", 0.2));
    assert!((cost - 3e-5).abs() < 1e-12, "{cost}");
}
