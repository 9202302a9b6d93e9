//! The Prometheus exporter: `kwtop serve` and an [`Endpoint`] the live monitor can run beside it.
//!
//! The endpoint is a subscriber of the pipeline (`crate::pipeline`): after every accounted sample,
//! on the thread that owns the engine, [`Endpoint::update`]
//! turns the ledger into a plain-data [`metrics::MetricsView`] and swaps it in behind a mutex
//! (latest wins; the lock is held only to clone an `Arc`). The HTTP thread ([`http`]) encodes the
//! latest view on each scrape, so a scrape never waits for a sample and a slow client never stalls
//! sampling.
//!
//! Using it from another driver (e.g. the TUI):
//!
//! ```no_run
//! # fn demo(params: &kwtop::serve::ServeParams, impact: kwtop::impact::ImpactParams, engine: &kwtop::engine::Engine) -> Result<(), String> {
//! let mut endpoint = kwtop::serve::Endpoint::start(params.listen, params.top_processes, impact)?;
//! // after every `engine.push(sample)`:
//! endpoint.update(engine);
//! // dropping the endpoint stops the server
//! # Ok(()) }
//! ```
//!
//! Must not: read sensors (the driver samples), or bind a non-loopback address unless it was asked
//! for (the default is `127.0.0.1:9875`).

mod expo;
pub mod http;
pub mod metrics;
mod work;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineParams};
use crate::impact::ImpactParams;
use crate::pipeline::{Frame, LiveFeed, Pipeline, Subscriber};
use crate::signals::StopFlag;
use crate::sources::{Sampler, SourceConfig};
use crate::workmeter::{WorkBoard, WorkMeter, WorkSpec};
use http::{Responder, Response};
use metrics::{Exporter, MetricsView};

/// The exporter's settings (`[serve]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeParams {
    /// Address of the `/metrics` endpoint.
    pub listen: SocketAddr,
    /// Processes exported individually (by session energy); the rest form one `other` series per device.
    pub top_processes: usize,
}

/// The latest view, shared between the sampling thread and the HTTP thread.
#[derive(Debug, Default)]
struct Latest {
    view: Mutex<Option<Arc<MetricsView>>>,
}

impl Latest {
    fn get(&self) -> Option<Arc<MetricsView>> {
        match self.view.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, v: MetricsView) {
        let v = Some(Arc::new(v));
        match self.view.lock() {
            Ok(mut g) => *g = v,
            Err(poisoned) => *poisoned.into_inner() = v,
        }
    }
}

impl Responder for Latest {
    fn metrics(&self) -> Response {
        let started = Instant::now();
        let Some(view) = self.get() else {
            let mut r = Response::new(503, "text/plain; charset=utf-8", "no sample yet\n");
            r.headers.push(("retry-after", "1"));
            return r;
        };
        let mut out = String::with_capacity(16 * 1024);
        let encoded = metrics::encode(&mut out, view)
            .and_then(|()| metrics::encode_scrape_duration(&mut out, started.elapsed().as_secs_f64()));
        match encoded {
            Ok(()) => Response::new(
                200,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                out,
            ),
            Err(_) => Response::new(500, "text/plain; charset=utf-8", "encoding failed\n"),
        }
    }
}

/// Parse a listen address such as `127.0.0.1:9875` or `[::1]:9875`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "invalid listen address '{s}': use an IP address and port such as 127.0.0.1:9875 or [::1]:9875"
        )
    })
}

/// The warning printed when the endpoint listens beyond this machine, `None` for loopback.
pub fn exposure_warning(addr: &SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "warning: listening on {addr}, not loopback: process names, users and container ids on this \
             host are readable by anyone who can reach it (kwtop has no authentication; use a firewall \
             or a reverse proxy)"
        )
    })
}

/// A running `/metrics` endpoint fed by its owner's engine.
pub struct Endpoint {
    exporter: Exporter,
    impact: ImpactParams,
    latest: Arc<Latest>,
    server: http::Server,
    /// The work meter's figures, exported as `kwtop_work_*`.
    work: Option<WorkBoard>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.server.local_addr())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Bind `addr` and serve on a background thread, exporting `top_processes` processes one by one
    /// with `impact`'s figures. Answers 503 until the first [`Endpoint::update`].
    /// Prints nothing: callers warn about non-loopback addresses with [`exposure_warning`].
    pub fn start(addr: SocketAddr, top_processes: usize, impact: ImpactParams) -> Result<Endpoint, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let latest = Arc::new(Latest::default());
        let responder: Arc<dyn Responder> = Arc::clone(&latest) as Arc<dyn Responder>;
        let server =
            http::Server::start(listener, responder).map_err(|e| format!("cannot serve on {addr}: {e}"))?;
        Ok(Endpoint {
            exporter: Exporter::new(top_processes),
            impact,
            latest,
            server,
            work: None,
        })
    }

    /// Also export the work meter's units and energy (`kwtop_work_*`). The meter must come before
    /// the endpoint among the pipeline's subscribers, so both show the same sample.
    pub fn with_work(mut self, board: Option<WorkBoard>) -> Self {
        self.work = board;
        self
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Publish the engine's current state; call after every `engine.push`.
    pub fn update(&mut self, engine: &Engine) {
        let mut view = self.exporter.update(engine, &self.impact);
        view.work = self.work.as_ref().and_then(WorkBoard::get).map(|w| w.figures);
        self.latest.set(view);
    }
}

/// The endpoint follows the pipeline: each frame's ledger becomes the view scrapes read. The live
/// monitor subscribes it to the screen's own pipeline (`kwtop --serve`), so the screen and
/// `/metrics` show the same accounting.
impl Subscriber for Endpoint {
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        self.update(frame.engine);
        Ok(())
    }
}

/// Why the exporter could not start or run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(pub String);

/// How long one GET of a `--work-metric` may take: the sampling interval, between 0.5 s and 5 s.
pub fn work_timeout(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// `kwtop serve`: sample `sources` every `interval`, account with `engine` and serve `/metrics` on
/// `params.listen` until SIGINT/SIGTERM/SIGHUP; with `work`, count units of work too
/// (`kwtop_work_*`), its messages on stderr.
pub fn run(
    params: &ServeParams,
    sources: &SourceConfig,
    engine: &EngineParams,
    impact: &ImpactParams,
    interval: Duration,
    work: Option<&WorkSpec>,
) -> Result<(), ServeError> {
    let addr = params.listen;
    let stop = StopFlag::install().map_err(ServeError)?;
    let mut feed = LiveFeed::new(Sampler::from_config(sources), interval);
    // Start-up is over: the pages of code and data only it ran go (issue 12), while this is the
    // only thread (the endpoint and the work meter start their own).
    let _ = crate::sources::resident::release_startup_pages();
    let mut meter = work
        .map(|spec| WorkMeter::start(spec, &sources.proc_root, impact.clone(), work_timeout(interval)))
        .transpose()
        .map_err(ServeError)?;
    let mut endpoint = Endpoint::start(addr, params.top_processes, impact.clone())
        .map_err(ServeError)?
        .with_work(meter.as_ref().map(WorkMeter::board));
    if let Some(w) = exposure_warning(&addr) {
        eprintln!("kwtop: {w}");
    }
    eprintln!("kwtop: serving http://{}/metrics", endpoint.local_addr());
    let mut pipeline = Pipeline::new(engine);
    let mut printer = crate::subscribers::NoticePrinter;
    let mut subs: Vec<&mut dyn Subscriber> = Vec::with_capacity(3);
    if let Some(m) = meter.as_mut() {
        subs.push(m);
    }
    subs.push(&mut endpoint);
    subs.push(&mut printer);
    let n = pipeline.run(&mut feed, &mut subs, &|| stop.is_set(), |errors| {
        for e in errors {
            eprintln!("kwtop: {e}");
        }
        true
    });
    eprintln!("kwtop: stopped serving after {n} samples");
    Ok(())
}

#[cfg(test)]
mod tests;
