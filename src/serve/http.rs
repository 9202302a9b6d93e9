//! The `/metrics` HTTP server: hyper's HTTP/1.1 on a tokio runtime of its own (one thread), with a
//! routing table of two paths: `GET`/`HEAD` of `/metrics` and `/`, 404 for other paths, 405 (with
//! `Allow`) for other methods; one request per connection (`Connection: close`), which Prometheus
//! handles fine.
//!
//! Bounded on purpose, so that nobody who can reach the port can blind monitoring or exhaust memory:
//! - a request head is at most [`MAX_HEAD_BYTES`] (more gets 431, a malformed one 400) and must
//!   arrive within [`HEAD_DEADLINE`] of connecting, or the connection is closed; a body is never read;
//! - a connection lives at most [`CONNECTION_DEADLINE`] in all (head, answer and writing it);
//! - at most [`Limits::max_connections`] connections are open at once. One more evicts the oldest
//!   (closes it unanswered) instead of being refused: a legitimate scrape needs milliseconds, so
//!   connections held half-open cost their holder the oldest slots first, and a scrape is only lost
//!   if a whole cap's worth of connections arrives during it.
//!
//! Must not: read the sensors or the ledger (it asks the [`Responder`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

/// Largest request line + headers accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has, from connecting, to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Time a connection may live in all: the head, then the answer and writing it.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// Most connections open at once (lower when the open-files limit is low, see [`Limits::for_process`]).
pub const MAX_CONNECTIONS: usize = 1024;

/// Read buffer per connection: hyper's smallest (`max_buf_size` panics below it), which holds a
/// whole head of [`MAX_HEAD_BYTES`].
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// The server's bounds; [`Limits::for_process`] in production, shorter ones in tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// See [`HEAD_DEADLINE`].
    pub head_deadline: Duration,
    /// See [`CONNECTION_DEADLINE`].
    pub connection_deadline: Duration,
    /// Connections open at once before the oldest is evicted.
    pub max_connections: usize,
}

impl Limits {
    /// The documented deadlines, and [`MAX_CONNECTIONS`] or half the process's open-files limit
    /// (soft `RLIMIT_NOFILE`, often 1024), whichever is lower, so that the sensors, the terminal and
    /// `accept` itself never run out of file descriptors because of clients.
    pub fn for_process() -> Limits {
        let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(MAX_CONNECTIONS as u64, |(soft, _hard)| soft / 2);
        Limits {
            head_deadline: HEAD_DEADLINE,
            connection_deadline: CONNECTION_DEADLINE,
            max_connections: usize::try_from(files)
                .unwrap_or(usize::MAX)
                .clamp(16, MAX_CONNECTIONS),
        }
    }
}

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra headers, names in lower case (sent title-cased), e.g. `("allow", "GET, HEAD")`.
    pub headers: Vec<(&'static str, &'static str)>,
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

    /// As hyper's response. Content-Length comes from the body; hyper leaves the body out for HEAD.
    fn into_hyper(self) -> hyper::Response<String> {
        let mut r = hyper::Response::new(self.body);
        *r.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = r.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        for (name, value) in self.headers {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        r
    }
}

/// What answers `GET /metrics` (the rest is routed here).
pub trait Responder: Send + Sync + 'static {
    fn metrics(&self) -> Response;
}

const INDEX: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kwtop exporter</title></head>\n\
<body><h1>kwtop</h1><p>Per-process GPU and CPU power, energy and CO2e for Prometheus.</p>\n\
<p><a href=\"/metrics\">/metrics</a></p></body></html>\n";

/// Route one request by method and target (a query string is ignored).
pub fn route(method: &str, target: &str, responder: &dyn Responder) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let page = match path {
        "/metrics" => None,
        "/" => Some(Response::new(200, "text/html; charset=utf-8", INDEX)),
        _ => return Response::text(404, "not found: kwtop serves /metrics"),
    };
    if method != "GET" && method != "HEAD" {
        let mut r = Response::text(405, "method not allowed: use GET");
        r.headers.push(("allow", "GET, HEAD"));
        return r;
    }
    page.unwrap_or_else(|| responder.metrics())
}

/// The open connections, oldest first, each with the sender that evicts it.
#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    conns: BTreeMap<u64, oneshot::Sender<()>>,
}

type OpenConns = Arc<Mutex<Open>>;

/// Removes its connection from [`Open`] when the connection's task ends, however it ends.
struct Registered {
    id: u64,
    open: OpenConns,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.conns.remove(&self.id);
    }
}

/// Register a new connection, evicting the oldest ones while `max` or more are open.
fn register(open: &OpenConns, max: usize) -> (Registered, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let mut o = open.lock().unwrap_or_else(PoisonError::into_inner);
    while o.conns.len() >= max.max(1) {
        if let Some((_, evict)) = o.conns.pop_first() {
            let _ = evict.send(());
        }
    }
    let id = o.next_id;
    o.next_id += 1;
    o.conns.insert(id, tx);
    drop(o);
    (
        Registered {
            id,
            open: Arc::clone(open),
        },
        rx,
    )
}

/// Serve one connection until it is answered, fails, times out or is evicted.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    http: Arc<hyper::server::conn::http1::Builder>,
    responder: Arc<dyn Responder>,
    registered: Registered,
    evicted: oneshot::Receiver<()>,
    deadline: Duration,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let r = route(req.method().as_str(), req.uri().path(), responder.as_ref());
        std::future::ready(Ok::<_, Infallible>(r.into_hyper()))
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    // Errors (a client gone, a head too slow or malformed: hyper has answered what it could) end
    // only this connection, silently: there is nobody to tell but the client.
    tokio::select! {
        _ = tokio::time::timeout(deadline, conn) => {}
        _ = evicted => {}
    }
    drop(registered);
}

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `listener` on a background thread with [`Limits::for_process`].
    pub fn start(listener: TcpListener, responder: Arc<dyn Responder>) -> std::io::Result<Server> {
        Server::start_with(listener, responder, Limits::for_process())
    }

    /// Serve `listener` on a background thread within `limits`.
    pub fn start_with(
        listener: TcpListener,
        responder: Arc<dyn Responder>,
        limits: Limits,
    ) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _in_runtime = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kwtop-http".into())
            .spawn(move || rt.block_on(accept_loop(listener, responder, limits, stopped)))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, close every connection and wait for the server thread.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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

pub(super) async fn accept_loop(
    listener: tokio::net::TcpListener,
    responder: Arc<dyn Responder>,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_deadline)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(false)
        .title_case_headers(true);
    let http = Arc::new(http);
    let open = OpenConns::default();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (registered, evicted) = register(&open, limits.max_connections);
        tokio::spawn(serve_connection(
            stream,
            Arc::clone(&http),
            Arc::clone(&responder),
            registered,
            evicted,
            limits.connection_deadline,
        ));
    }
}
