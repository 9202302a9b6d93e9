#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kwtop serve` as a process on a loopback port, over a fixture /proc + powercap tree: hostile
//! process names come out as valid exposition (`promtool check metrics`, from Debian's
//! `prometheus` package), only GET /metrics and / are served, 1,000 sequential scrapes do not
//! grow its memory, and clients that hold connections half-open neither lock scrapes out nor stay.

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kwtop::serve::http::HEAD_DEADLINE;

use serve_support::{BUSY_PID, Fixture, HOSTILE_PID, Serve, Ticker, get, promtool_check, value};

/// Every sample line is `name{labels} value` on one line: label values hold no raw newline, no
/// escape or control byte, and quotes inside them are escaped.
fn assert_well_formed(text: &str) {
    for line in text.lines() {
        assert!(!line.chars().any(|c| c.is_control()), "control char in {line:?}");
        if line.starts_with('#') {
            continue;
        }
        let (series, v) = line.rsplit_once(' ').unwrap();
        v.parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        if let Some((name, labels)) = series.split_once('{') {
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line:?}"
            );
            let labels = labels.strip_suffix('}').unwrap();
            // Walk key="value" pairs, honouring \" and \\ escapes.
            let mut chars = labels.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line:?}"
                );
                assert_eq!(chars.next(), Some('"'), "{line:?}");
                loop {
                    match chars.next() {
                        Some('\\') => assert!(matches!(chars.next(), Some('\\' | '"' | 'n')), "{line:?}"),
                        Some('"') => break,
                        Some(_) => {}
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                match chars.next() {
                    Some(',') | None => {}
                    other => panic!("unexpected {other:?} in {line:?}"),
                }
            }
        }
    }
}

fn hostile_metrics() -> (Arc<Fixture>, String) {
    let fixture = Arc::new(Fixture::new());
    let serve = Serve::start(&fixture.config(), "100ms");
    let ticker = Ticker::start(Arc::clone(&fixture), Duration::from_millis(50));
    let hostile = HOSTILE_PID.to_string();
    let mut text = String::new();
    for _ in 0..200 {
        text = serve.metrics();
        if value(&text, "kwtop_process_energy_joules_total", &[("pid", &hostile)]).is_some_and(|v| v > 0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // real-time: waiting for kwtop's next sample
    }
    ticker.stop();
    (fixture, text)
}

#[test]
fn hostile_process_names_are_escaped_in_the_exposition() {
    let (_fixture, text) = hostile_metrics();
    let hostile = HOSTILE_PID.to_string();
    assert!(
        value(&text, "kwtop_process_energy_joules_total", &[("pid", &hostile)]).is_some(),
        "hostile process not exported:\n{text}"
    );
    assert_well_formed(&text);
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("kwtop_process_energy_joules_total") && l.contains(&format!("pid=\"{hostile}\""))
        })
        .unwrap();
    // The quote and backslash survive, escaped; the newline, ESC, BEL and bidi override do not.
    assert!(line.contains(r#"command="ev\"il\\na?me?"#), "{line}");
    assert!(!line.contains('\u{202e}'), "{line}");
    assert!(line.contains("slurm_job=\"4242\""), "{line}");
}

#[test]
#[ignore = "needs prometheus (promtool)"]
fn promtool_accepts_the_exposition_with_hostile_names() {
    let (_fixture, text) = hostile_metrics();
    let (ok, msg) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed: {msg}\n{text}");
}

#[test]
fn serves_only_get_metrics_and_the_index() {
    let fixture = Fixture::new();
    let serve = Serve::start(&fixture.config(), "200ms");
    let (status, body) = get(serve.addr, "/");
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/metrics\""), "{body}");
    assert_eq!(get(serve.addr, "/favicon.ico").0, 404);
    assert_eq!(get(serve.addr, "/metrics/../x").0, 404);
    let text = serve.metrics();
    assert!(
        value(&text, "kwtop_device_energy_joules_total", &[("device", "cpu0")]).is_some(),
        "{text}"
    );
    assert!(
        value(&text, "kwtop_scrape_duration_seconds", &[]).is_some_and(|s| s >= 0.0),
        "{text}"
    );
    let grid = value(&text, "kwtop_grid_intensity_grams_per_kwh", &[("label", "DE")]).unwrap();
    assert!(grid > 0.0);
    let _ = BUSY_PID;
}

#[test]
fn bad_listen_address_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_kwtop"))
        .args(["serve", "--listen", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid listen address 'localhost'"), "{err}");
}

/// 1,000 sequential scrapes (a new connection each, as Prometheus does after `Connection: close`)
/// while kwtop keeps sampling: resident memory after them stays within 2 MiB of before.
#[test]
fn a_thousand_scrapes_do_not_grow_memory() {
    let fixture = Arc::new(Fixture::new());
    let serve = Serve::start(&fixture.config(), "100ms");
    let ticker = Ticker::start(Arc::clone(&fixture), Duration::from_millis(100));
    for _ in 0..100 {
        serve.metrics();
    }
    let before = serve.rss_kib();
    let mut bytes = 0;
    for _ in 0..1000 {
        bytes += serve.metrics().len();
    }
    let after = serve.rss_kib();
    ticker.stop();
    eprintln!("RSS before 1000 scrapes: {before} KiB, after: {after} KiB ({bytes} bytes served)");
    assert!(
        after <= before + 2048,
        "RSS grew from {before} KiB to {after} KiB over 1000 scrapes"
    );
}

/// A connection that sent half a request head and waits.
fn half_open(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    s
}

/// Issue 15: 100 clients holding half a request each (anyone who can reach a `--listen 0.0.0.0`
/// endpoint) used to fill the 16 connection slots, and every scrape answered 503 until they timed out.
#[test]
fn issue_15_half_open_connections_do_not_lock_out_a_scrape() {
    let fixture = Fixture::new();
    let serve = Serve::start(&fixture.config(), "200ms");
    let held: Vec<TcpStream> = (0..100).map(|_| half_open(serve.addr)).collect();
    std::thread::sleep(Duration::from_millis(200)); // real-time: let kwtop accept all 100 first
    let started = Instant::now();
    let (status, body) = get(serve.addr, "/metrics");
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        value(&body, "kwtop_device_energy_joules_total", &[("device", "cpu0")]).is_some(),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(1),
        "scrape took {took:?} beside 100 half-open connections"
    );
    drop(held);
}

/// A client that does not finish its request head within the head deadline is disconnected,
/// unanswered, about then (the old server answered 408; hyper closes the connection).
#[test]
fn a_client_too_slow_with_its_head_is_closed_at_the_deadline() {
    let fixture = Fixture::new();
    let serve = Serve::start(&fixture.config(), "200ms");
    let mut slow = half_open(serve.addr);
    let started = Instant::now();
    slow.set_read_timeout(Some(HEAD_DEADLINE * 3)).unwrap();
    let mut got = Vec::new();
    match slow.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
    }
    let after = started.elapsed();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        after >= HEAD_DEADLINE - Duration::from_millis(500) && after < HEAD_DEADLINE + Duration::from_secs(3),
        "closed after {after:?}, head deadline {HEAD_DEADLINE:?}"
    );
    // The server itself is fine.
    assert_eq!(get(serve.addr, "/").0, 200);
}

/// `kwtop --serve=ADDR`: the live monitor in a real terminal (tmux) serves the same endpoint.
#[test]
#[ignore = "needs tmux"]
fn live_monitor_serves_metrics_with_serve_flag() {
    let fixture = Fixture::new();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let socket = format!("kwtop-serve-{}", std::process::id());
    let cmd = format!(
        "{} --config {} --serve={addr}",
        env!("CARGO_BIN_EXE_kwtop"),
        fixture.config().display()
    );
    let started = Command::new("tmux")
        .args(["-L", &socket, "new-session", "-d", "-x", "100", "-y", "30", &cmd])
        .status()
        .unwrap();
    assert!(started.success(), "tmux new-session failed");
    let mut text = String::new();
    for _ in 0..200 {
        let (status, body) = get(addr, "/metrics");
        if status == 200 {
            text = body;
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // real-time: waiting for the live monitor's first sample
    }
    let _ = Command::new("tmux")
        .args(["-L", &socket, "send-keys", "q"])
        .status();
    std::thread::sleep(Duration::from_millis(300)); // real-time: let kwtop quit and restore the terminal before the server goes
    let _ = Command::new("tmux").args(["-L", &socket, "kill-server"]).status();
    assert!(
        value(&text, "kwtop_device_energy_joules_total", &[("device", "cpu0")]).is_some(),
        "no metrics from the live monitor: {text:?}"
    );
}
