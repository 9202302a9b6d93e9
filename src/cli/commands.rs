//! Drivers of the subcommands: wire sources, engine and outputs together. Between samples they
//! wait with `Sampler::wait_until`, which keeps reading the energy counters so none wraps unseen.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CliError, emit, host_name};
use crate::config::Settings;
use crate::pipeline::{LiveFeed, Pipeline, ReplayFeed};
use crate::recording::{self, Reader, Writer};
use crate::redact::{CmdlineMode, Redactor};
use crate::signals::StopFlag;
use crate::snapshot;
use crate::sources::Sampler;
use crate::subscribers::{NoticePrinter, Recorder};

fn runtime(msg: impl Into<String>) -> CliError {
    CliError::Runtime(msg.into())
}

pub fn snapshot(
    settings: &Settings,
    interval: Duration,
    json: bool,
    top: usize,
    red: &Redactor,
) -> Result<(), CliError> {
    // Two samples `interval` apart: one accounted interval.
    let mut feed = LiveFeed::new(Sampler::from_config(&settings.sources), interval).until(Some(interval));
    let mut p = Pipeline::new(&settings.engine);
    p.run(&mut feed, &mut [], &|| false, |_| true);
    let dt = p
        .engine
        .last_interval
        .as_ref()
        .map_or(interval.as_secs_f64(), |i| i.dt_s);
    let mut doc = snapshot::build(&p.engine.ledger, &settings.impact, &host_name(), dt, &p.notices);
    snapshot::redact(&mut doc, red);
    if json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| runtime(e.to_string()))?;
        emit(&(text + "\n"))
    } else {
        emit(&snapshot::table(&doc, top))
    }
}

/// What `kwtop record` was asked for.
pub struct RecordArgs {
    pub output: PathBuf,
    pub duration: Option<Duration>,
    pub interval: Duration,
    /// Also save the session summary at the end.
    pub summary: bool,
    /// `--note`s for the header.
    pub notes: Vec<String>,
    /// Command lines in the recording (and its summary) pass through this.
    pub redactor: Redactor,
    /// A full sample every this many (`--full-every`).
    pub full_every: u32,
}

pub fn record(settings: &Settings, args: &RecordArgs) -> Result<(), CliError> {
    let RecordArgs {
        output,
        duration,
        interval,
        summary,
        notes: user_notes,
        redactor,
        full_every,
    } = args;
    let output = output.as_path();
    let stop = StopFlag::install().map_err(runtime)?;
    // Private like the summaries: 0600, and never through a symlink planted at the path.
    let file = crate::export::create_private(output).map_err(|e| runtime(e.to_string()))?;
    let mut feed = LiveFeed::new(Sampler::from_config(&settings.sources), *interval).until(*duration);
    let header = recording::Header {
        schema: recording::SCHEMA.into(),
        host: host_name(),
        kwtop_version: env!("CARGO_PKG_VERSION").into(),
        started_ms: crate::snapshot_now_ms(),
        interval_s: interval.as_secs_f64(),
        // What the sources are (driver, GPU models), then the user's notes; all sanitized.
        notes: feed
            .sampler()
            .describe()
            .into_iter()
            .chain(user_notes.iter().map(|n| crate::sanitize::sanitize_str(n, 512)))
            .collect(),
        cmdline: Some(redactor.mode),
    };
    let werr = |e: std::io::Error| runtime(format!("writing {}: {e}", output.display()));
    let writer = open_writer(file, output, &header, redactor, *full_every).map_err(werr)?;
    let mut recorder = Recorder {
        writer,
        path: output.display().to_string(),
    };
    let mut p = Pipeline::new(&settings.engine);
    let mut failed = None;
    let n = p.run(
        &mut feed,
        &mut [&mut recorder, &mut NoticePrinter],
        &|| stop.is_set(),
        |errors| {
            failed = errors.first().cloned();
            false
        },
    );
    if let Some(e) = failed {
        return Err(runtime(e));
    }
    // Ends the last zstd frame (gzip member); a killed recorder leaves every flushed sample readable.
    recorder.writer.finish().map_err(werr)?;
    eprintln!("kwtop: recorded {n} samples to {}", output.display());
    if *summary {
        let paths = crate::export::write_session_summary(
            &p.engine.ledger,
            &settings.impact,
            &crate::summary::SummaryOptions::machine(
                redactor.clone(),
                settings.engine.attribution.charge_idle,
            ),
            &settings.export,
            &header.host,
            &p.notices,
        )
        .map_err(|e| runtime(e.to_string()))?;
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("kwtop: summary saved to {}", paths.join(", "));
    }
    Ok(())
}

/// The recording writer for `output`: compressed as its name says (`.zst`, `.gz`).
fn open_writer(
    file: File,
    output: &Path,
    header: &recording::Header,
    redactor: &Redactor,
    full_every: u32,
) -> std::io::Result<Writer<BufWriter<File>>> {
    let options = recording::WriterOptions {
        full_every,
        compression: recording::Compression::for_path(output),
        redactor: Some(redactor.clone()),
    };
    Writer::with_options(BufWriter::new(file), header, options)
}

/// Open a recording (or summary) for reading, undoing zstd or gzip when its bytes say so.
pub(super) fn open_recording(file: &Path) -> Result<Box<dyn std::io::BufRead + Send>, CliError> {
    let f = File::open(file).map_err(|e| runtime(format!("cannot open {}: {e}", file.display())))?;
    recording::decompressing(f).map_err(|e| runtime(format!("cannot read {}: {e}", file.display())))
}

pub fn report(
    settings: &Settings,
    file: &Path,
    json: bool,
    format: Option<crate::summary::Format>,
    top: usize,
) -> Result<(), CliError> {
    use std::io::Read;
    let mut input = open_recording(file)?;
    let head = input
        .fill_buf()
        .map_err(|e| runtime(format!("cannot read {}: {e}", file.display())))?;
    if crate::summary::looks_like_summary(&String::from_utf8_lossy(head)) {
        // A JSON summary: render it again in the asked format (md by default).
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .map_err(|e| runtime(format!("cannot read {}: {e}", file.display())))?;
        let doc =
            crate::summary::parse_json(&text).map_err(|e| runtime(format!("{}: {e}", file.display())))?;
        let format = format.unwrap_or(if json {
            crate::summary::Format::Json
        } else {
            crate::summary::Format::Md
        });
        return emit(&crate::summary::render(&doc, format));
    }
    let mut reader = Reader::new(input).map_err(|e| runtime(format!("{}: {e}", file.display())))?;
    let host = reader.header.host.clone();
    // The recording keeps what it was written with; a stricter [export] cmdline hides more.
    let red = stricter(&settings.export.redactor, reader.header.cmdline_mode());
    let mut p = Pipeline::new(&settings.engine);
    // As fast as it reads; a corrupt line ends it with a notice naming the line (printed, and in
    // the output): everything before it is accounted.
    let mut feed = ReplayFeed::new(reader.by_ref(), None, file.display().to_string());
    p.run(&mut feed, &mut [&mut NoticePrinter], &|| false, |_| true);
    let notices = &p.notices;
    if let Some(format) = format {
        let opts = crate::summary::SummaryOptions::machine(red, settings.engine.attribution.charge_idle);
        let doc = crate::summary::build(&p.engine.ledger, &settings.impact, &host, notices, &opts);
        return emit(&crate::summary::render(&doc, format));
    }
    let mut doc = snapshot::build(
        &p.engine.ledger,
        &settings.impact,
        &host,
        p.engine.ledger.session_s,
        notices,
    );
    snapshot::redact(&mut doc, &red);
    if json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| runtime(e.to_string()))?;
        emit(&(text + "\n"))
    } else {
        emit(&snapshot::table(&doc, top))
    }
}

/// `config`'s redactor in the stricter of its mode and `written` (the mode a recording was written
/// with): redacting what is already redacted changes nothing, and nothing un-redacts.
pub(super) fn stricter(config: &Redactor, written: CmdlineMode) -> Redactor {
    let rank = |m: CmdlineMode| match m {
        CmdlineMode::Full => 0,
        CmdlineMode::Redacted => 1,
        CmdlineMode::Name => 2,
    };
    let mut red = config.clone();
    if rank(written) > rank(red.mode) {
        red.mode = written;
    }
    red
}

/// Flags of the live monitor (global options on the command line).
#[derive(Debug, Clone, Default)]
pub struct LiveArgs {
    pub no_color: bool,
    pub ascii: bool,
    /// `--stats`: the last tick's cost per stage in the footer.
    pub stats: bool,
    /// `--serve[=ADDR]`: also serve Prometheus `/metrics` on this address.
    pub serve: Option<std::net::SocketAddr>,
    /// `--progress-log` / `--work-metric`: energy per unit of work (not for a replay).
    pub work: Option<crate::workmeter::WorkSpec>,
}

/// An export hook that writes the session summary for `host` and reports the paths as
/// "`what` written: …". With `only_on_key`, exits and checkpoints write nothing (a replay). Command
/// lines: `[export] cmdline`, or `written` (a replayed recording's mode) where that is stricter.
pub(super) fn summary_hook(
    settings: &Settings,
    host: String,
    what: &'static str,
    only_on_key: bool,
    written: CmdlineMode,
) -> crate::tui::ExportHook {
    let impact = settings.impact.clone();
    let opts = crate::summary::SummaryOptions::machine(
        stricter(&settings.export.redactor, written),
        settings.engine.attribution.charge_idle,
    );
    let export = settings.export.clone();
    Box::new(move |engine, notices, why| {
        if only_on_key && why != crate::tui::ExportReason::Key {
            return Ok(String::new());
        }
        crate::export::write_session_summary(&engine.ledger, &impact, &opts, &export, &host, notices)
            .map(|paths| {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                format!("{what} written: {}", names.join(", "))
            })
            .map_err(|e| e.to_string())
    })
}

/// What a caller adds to the live monitor: its feed wrapped (`wrap_feed`), more subscribers of the
/// session's pipeline. The `kwtop` binary adds nothing; fault-injection tests (`examples/faults.rs`)
/// add a feed or a subscriber that fails.
#[derive(Default)]
pub struct LiveHooks {
    pub wrap_feed: Option<Box<dyn FnOnce(crate::tui::SendFeed) -> crate::tui::SendFeed>>,
    pub subscribers: Vec<Box<dyn crate::pipeline::Subscriber>>,
}

/// Whether `k` may signal the processes the live monitor lists: only when they come from this
/// pid namespace's `/proc` (with another root, say a host's /proc mounted in a container, the
/// same number can name another process here).
fn live_signals(proc_root: &std::path::Path) -> crate::app::Signals {
    if proc_root == std::path::Path::new("/proc") {
        crate::app::Signals::Live {
            own_pid: std::process::id(),
        }
    } else {
        crate::app::Signals::Off(format!(
            "k is off: processes are read from {} ([sources] proc_root), not this pid namespace's /proc",
            crate::sanitize::sanitize_str(&proc_root.display().to_string(), 80)
        ))
    }
}

/// The live monitor (`crate::tui`); the session summary is written on `e` and on exit.
pub fn live(settings: &Settings, args: LiveArgs, hooks: LiveHooks) -> Result<(), CliError> {
    let on_export = summary_hook(settings, host_name(), "session summary", false, CmdlineMode::Full);
    let mut options = crate::tui::Options {
        no_color: args.no_color,
        ascii: args.ascii,
        stats: args.stats,
        ui: settings.ui,
        on_export: Some(on_export),
        host: None,
        checkpoint: settings.export.checkpoint,
        subscribers: hooks.subscribers,
        signals: live_signals(&settings.sources.proc_root),
        work: None,
    };
    let meter = match &args.work {
        Some(spec) => Some(
            crate::workmeter::WorkMeter::start(
                spec,
                &settings.sources.proc_root,
                settings.impact.clone(),
                crate::serve::work_timeout(settings.interval),
            )
            .map_err(runtime)?,
        ),
        None => None,
    };
    options.work = meter.as_ref().map(|m| m.board());
    if let Some(addr) = args.serve {
        // `--serve`: the endpoint follows the screen's own pipeline (one engine for both).
        let endpoint =
            crate::serve::Endpoint::start(addr, settings.serve.top_processes, settings.impact.clone())
                .map_err(runtime)?
                .with_work(options.work.clone());
        if let Some(w) = crate::serve::exposure_warning(&addr) {
            eprintln!("kwtop: {w}");
        }
        options.subscribers.insert(0, Box::new(endpoint));
    }
    // The meter first: the endpoint exports what it counted for the same sample.
    if let Some(m) = meter {
        options.subscribers.insert(0, Box::new(m));
    }
    // The screen quits without waiting for its feed: the feed sleeps until each sample is due.
    let mut feed: crate::tui::SendFeed =
        Box::new(LiveFeed::new(Sampler::from_config(&settings.sources), settings.interval).sleep_between());
    if let Some(wrap) = hooks.wrap_feed {
        feed = wrap(feed);
    }
    crate::tui::run_with_feed(&settings.app(), options, feed, false)
        .map(|_engine| ())
        .map_err(CliError::from)
}
