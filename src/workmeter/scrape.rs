//! `--work-metric URL#METRIC`: an inference server's counter (vLLM's
//! `vllm:generation_tokens_total`, TGI's, any Prometheus counter), read over plain HTTP.
//!
//! The GET runs on its own thread with a timeout: at each sample the meter sends one request unless
//! one is still in flight, and takes the answers that came back. The page is read by
//! `kwtop_core::work::exposition`. A refused connection, a timeout, an HTTP error or a page without
//! the series is an answer of its own, a failure: the meter shows a gap, never a zero.

use std::fmt;
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use super::Poll;
use crate::work::Observation;
use crate::work::exposition::{Selector, read_count};
use crate::work::live::LiveWork;

/// Largest page read, bytes (a vLLM page with its histograms is a few hundred KiB).
const MAX_PAGE: u64 = 16 << 20;

/// A parsed `--work-metric`: the page's URL and the series to read on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricUrl {
    /// `http://host:port/path`.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub selector: Selector,
}

impl fmt::Display for MetricUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.url, self.selector)
    }
}

impl MetricUrl {
    /// Whether the host is this machine (a loopback or unspecified address, `localhost`): then the
    /// process listening on the port is the server whose energy counts.
    pub fn is_local(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
    }
}

/// Parse `http://HOST[:PORT]/PATH#METRIC[{label="value",…}]`.
pub fn parse_metric_url(s: &str) -> Result<MetricUrl, String> {
    let shown = crate::sanitize::sanitize_str(s, 120);
    let usage = || {
        format!(
            "invalid --work-metric '{shown}': use URL#METRIC, e.g. http://127.0.0.1:8000/metrics#vllm:generation_tokens_total"
        )
    };
    let (url, metric) = s.split_once('#').ok_or_else(usage)?;
    let selector = Selector::parse(metric).map_err(|e| e.to_string())?;
    if url.starts_with("https://") {
        return Err(format!(
            "invalid --work-metric '{shown}': https is not supported; kwtop reads a server's metrics over plain \
             http:// (usually on this machine)"
        ));
    }
    let rest = url.strip_prefix("http://").ok_or_else(usage)?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(usage());
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]:8000` or `host:8000`; a bare IPv6 literal must be bracketed.
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.starts_with('[')) => {
            (h.to_string(), p.parse::<u16>().map_err(|_| usage())?)
        }
        None => (authority.to_string(), 80),
        _ => return Err(usage()),
    };
    let url = if rest.contains('/') {
        url.to_string()
    } else {
        format!("{url}/")
    };
    Ok(MetricUrl {
        url,
        host,
        port,
        selector,
    })
}

/// One GET of the page and the count on it.
fn fetch(agent: &ureq::Agent, m: &MetricUrl) -> Result<u64, String> {
    let mut resp = agent.get(&m.url).call().map_err(|e| e.to_string())?;
    let page = resp
        .body_mut()
        .with_config()
        .limit(MAX_PAGE)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    read_count(&page, &m.selector).map_err(|e| e.to_string())
}

/// The thread that GETs the metric, and the meter's ends of its channels.
pub struct Poller {
    requests: Sender<i64>,
    answers: Receiver<(i64, Result<u64, String>)>,
    in_flight: bool,
}

impl Poller {
    /// Start the thread; each GET gives up after `timeout`. The thread ends when the poller is
    /// dropped (after the GET in progress, if any).
    pub fn start(m: &MetricUrl, timeout: Duration) -> Result<Poller, String> {
        let (requests, req_rx) = mpsc::channel::<i64>();
        let (ans_tx, answers) = mpsc::channel();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // A local server, not the proxy of the environment's HTTP_PROXY.
            .proxy(None)
            .max_redirects(3)
            .user_agent(concat!("kwtop/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent: ureq::Agent = config.into();
        let m = m.clone();
        std::thread::Builder::new()
            .name("kwtop-work-metric".into())
            .spawn(move || {
                for at_ms in req_rx {
                    if ans_tx.send((at_ms, fetch(&agent, &m))).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the work metric's reader: {e}"))?;
        Ok(Poller {
            requests,
            answers,
            in_flight: false,
        })
    }

    /// Take the answers that came back into `work`, and ask again (stamped `at_ms`) unless a
    /// request is still in flight.
    pub(super) fn poll(&mut self, at_ms: i64, work: &mut LiveWork) -> Poll {
        let mut out = Poll::Pending;
        while let Ok((t, answer)) = self.answers.try_recv() {
            self.in_flight = false;
            out = match answer {
                Ok(n) => {
                    work.observe(t, Observation::Total(n));
                    Poll::Answered
                }
                Err(e) => Poll::Failed(e),
            };
        }
        if !self.in_flight && self.requests.send(at_ms).is_ok() {
            self.in_flight = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metric_urls() {
        let m = parse_metric_url("http://127.0.0.1:8000/metrics#vllm:generation_tokens_total").unwrap();
        assert_eq!(
            (m.url.as_str(), m.host.as_str(), m.port),
            ("http://127.0.0.1:8000/metrics", "127.0.0.1", 8000)
        );
        assert_eq!(m.selector.name, "vllm:generation_tokens_total");
        assert!(m.is_local());
        assert_eq!(
            m.to_string(),
            "http://127.0.0.1:8000/metrics#vllm:generation_tokens_total"
        );
        let m =
            parse_metric_url(r#"http://[::1]:9000#tgi_request_generated_tokens_total{model="x#y"}"#).unwrap();
        assert_eq!((m.url.as_str(), m.port), ("http://[::1]:9000/", 9000));
        assert_eq!(m.selector.labels, [("model".into(), "x#y".into())]);
        assert!(m.is_local());
        let m = parse_metric_url("http://gpu07.example:80/m#x").unwrap();
        assert!(!m.is_local());
        assert_eq!(parse_metric_url("http://localhost/metrics#x").unwrap().port, 80);
        for bad in [
            "http://127.0.0.1:8000/metrics",
            "127.0.0.1:8000/metrics#x",
            "http://:80/#x",
            "http://h:port/#x",
            "http://u:p@h/#x",
            "http://::1/#x",
            "http://h/#9x",
        ] {
            assert!(parse_metric_url(bad).is_err(), "{bad}");
        }
        assert!(
            parse_metric_url("https://h/m#x")
                .unwrap_err()
                .contains("https is not supported")
        );
    }
}
