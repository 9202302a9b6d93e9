//! The smallest HTTP/1.1 server `/metrics` needs, on std sockets: `GET`/`HEAD` of `/metrics` and
//! `/`, 404 for other paths, 405 for other methods; one request per connection (`Connection:
//! close`), which Prometheus handles fine.
//!
//! Bounded on purpose: a request head is at most [`MAX_HEAD_BYTES`] and must arrive within
//! [`HEAD_DEADLINE`] (slow senders get 408, big heads 431), a body is never read, responses are
//! written with a timeout, and at most [`MAX_CONNECTIONS`] connections are served at once (more get
//! 503 and are closed). Must not: read the sensors or the ledger (it asks the [`Responder`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request line + headers accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Time allowed for writing one response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served concurrently.
pub const MAX_CONNECTIONS: usize = 16;

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra header lines (without CRLF), e.g. `Allow: GET, HEAD`.
    pub headers: Vec<String>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }
}

/// What answers `GET /metrics` (the rest is routed here).
pub trait Responder: Send + Sync + 'static {
    fn metrics(&self) -> Response;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

const INDEX: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kwtop exporter</title></head>\n\
<body><h1>kwtop</h1><p>Per-process GPU and CPU power, energy and CO2e for Prometheus.</p>\n\
<p><a href=\"/metrics\">/metrics</a></p></body></html>\n";

/// Route one parsed request line.
pub fn route(method: &str, target: &str, responder: &dyn Responder) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let page = match path {
        "/metrics" => None,
        "/" => Some(Response::new(200, "text/html; charset=utf-8", INDEX)),
        _ => return Response::text(404, "not found: kwtop serves /metrics"),
    };
    if method != "GET" && method != "HEAD" {
        let mut r = Response::text(405, "method not allowed: use GET");
        r.headers.push("Allow: GET, HEAD".into());
        return r;
    }
    page.unwrap_or_else(|| responder.metrics())
}

enum Head {
    Request { method: String, target: String },
    Bad(Response),
}

/// Read the request head within the size and time bounds.
fn read_head(stream: &mut TcpStream) -> Head {
    let start = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            break;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Head::Bad(Response::text(431, "request head too large"));
        }
        let left = HEAD_DEADLINE.saturating_sub(start.elapsed());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Head::Bad(Response::text(408, "request timeout"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Head::Bad(Response::text(400, "incomplete request")),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Head::Bad(Response::text(408, "request timeout"));
            }
            Err(_) => return Head::Bad(Response::text(400, "unreadable request")),
        }
    }
    let line_end = buf.iter().position(|&b| b == b'\r').unwrap_or(buf.len());
    let Ok(line) = std::str::from_utf8(&buf[..line_end]) else {
        return Head::Bad(Response::text(400, "bad request line"));
    };
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None)
            if !m.is_empty() && t.starts_with('/') && v.starts_with("HTTP/1.") =>
        {
            Head::Request {
                method: m.to_string(),
                target: t.to_string(),
            }
        }
        _ => Head::Bad(Response::text(400, "bad request line")),
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, with_body: bool) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for h in &r.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let ok = stream.write_all(head.as_bytes()).is_ok();
    if ok && with_body {
        let _ = stream.write_all(r.body.as_bytes());
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn handle(mut stream: TcpStream, responder: &dyn Responder) {
    let (r, with_body) = match read_head(&mut stream) {
        Head::Request { method, target } => (route(&method, &target, responder), method != "HEAD"),
        Head::Bad(r) => (r, true),
    };
    write_response(&mut stream, &r, with_body);
}

/// Decrements the live-connection count when a handler thread ends (also on panic).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `listener` on a background thread.
    pub fn start(listener: TcpListener, responder: Arc<dyn Responder>) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("kwtop-http".into())
            .spawn(move || accept_loop(&listener, &responder, &stop2))?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting and wait for the accept thread.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, responder: &Arc<dyn Responder>, stop: &AtomicBool) {
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = conn else {
            // EMFILE and friends: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            let slot = Slot(Arc::clone(&live));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            write_response(&mut stream, &Response::text(503, "too many connections"), true);
            drop(slot);
            continue;
        }
        let slot = Slot(Arc::clone(&live));
        let responder = Arc::clone(responder);
        let spawned = std::thread::Builder::new()
            .name("kwtop-http-conn".into())
            .spawn(move || {
                let _slot = slot;
                handle(stream, responder.as_ref());
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
