//! Drivers of the subcommands: wire sources, engine and outputs together. Between samples they
//! wait with `Sampler::wait_until`, which keeps reading the energy counters so none wraps unseen.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{CliError, emit, host_name};
use crate::config::Settings;
use crate::engine::Engine;
use crate::recording::{self, Reader, Writer};
use crate::redact::{CmdlineMode, Redactor};
use crate::snapshot;
use crate::sources::Sampler;

fn runtime(msg: impl Into<String>) -> CliError {
    CliError::Runtime(msg.into())
}

/// Set by SIGINT, SIGTERM or SIGHUP.
fn stop_flag() -> Result<Arc<AtomicBool>, CliError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| runtime(format!("cannot install signal handler: {e}")))?;
    }
    Ok(flag)
}

pub fn snapshot(
    settings: &Settings,
    interval: Duration,
    json: bool,
    top: usize,
    red: &Redactor,
) -> Result<(), CliError> {
    let mut sampler = Sampler::from_config(&settings.sources);
    let mut engine = Engine::new(&settings.engine);
    let start = Instant::now();
    engine.push(sampler.sample());
    sampler.sleep_until(start + interval);
    engine.push(sampler.sample());
    let notices = sampler.take_notices();
    let dt = engine
        .last_interval
        .as_ref()
        .map_or(interval.as_secs_f64(), |i| i.dt_s);
    let mut doc = snapshot::build(&engine.ledger, &settings.impact, &host_name(), dt, &notices);
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
    /// Also account the samples and save the session summary at the end.
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
    let (output, duration, interval) = (output.as_path(), *duration, *interval);
    let stop = stop_flag()?;
    // With --summary the samples are also accounted, for the session summary at the end.
    let mut engine = summary.then(|| Engine::new(&settings.engine));
    let mut notices = Vec::new();
    // Private like the summaries: 0600, and never through a symlink planted at the path.
    let file = crate::export::create_private(output).map_err(|e| runtime(e.to_string()))?;
    let mut sampler = Sampler::from_config(&settings.sources);
    let header = recording::Header {
        schema: recording::SCHEMA.into(),
        host: host_name(),
        kwtop_version: env!("CARGO_PKG_VERSION").into(),
        started_ms: crate::snapshot_now_ms(),
        interval_s: interval.as_secs_f64(),
        // What the sources are (driver, GPU models), then the user's notes; all sanitized.
        notes: sampler
            .describe()
            .into_iter()
            .chain(user_notes.iter().map(|n| crate::sanitize::sanitize_str(n, 512)))
            .collect(),
        cmdline: Some(redactor.mode),
    };
    let werr = |e: std::io::Error| runtime(format!("writing {}: {e}", output.display()));
    let mut writer = open_writer(file, output, &header, redactor, *full_every).map_err(werr)?;
    let start = Instant::now();
    let mut n: u32 = 0;
    loop {
        let sample = sampler.sample();
        writer.write(&sample).map_err(werr)?;
        if let Some(e) = &mut engine {
            e.push(sample);
        }
        for note in sampler.take_notices() {
            eprintln!("kwtop: {note}");
            notices.push(note);
        }
        n += 1;
        if stop.load(Ordering::Relaxed) || duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let next = start + interval * n;
        let next = duration.map_or(next, |d| next.min(start + d));
        sampler.wait_until(next, || stop.load(Ordering::Relaxed));
    }
    // Ends the last zstd frame (gzip member); a killed recorder leaves every flushed sample readable.
    writer.finish().map_err(werr)?;
    eprintln!("kwtop: recorded {n} samples to {}", output.display());
    if let Some(e) = &engine {
        let paths = crate::export::write_session_summary(
            &e.ledger,
            &settings.impact,
            &crate::summary::SummaryOptions::machine(
                redactor.clone(),
                settings.engine.attribution.charge_idle,
            ),
            &settings.export,
            &header.host,
            &notices,
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
    let mut engine = Engine::new(&settings.engine);
    let mut notices = Vec::new();
    for s in reader.by_ref() {
        match s {
            Ok(s) => {
                engine.push(s);
            }
            Err(e) => {
                // Everything before the bad line is still accounted.
                let msg = format!("{}: {e}; report covers the samples before it", file.display());
                eprintln!("kwtop: {msg}");
                notices.push(msg);
                break;
            }
        }
    }
    let host = reader.header.host.clone();
    // The recording keeps what it was written with; a stricter [export] cmdline hides more.
    let red = stricter(&settings.export.redactor, reader.header.cmdline_mode());
    if let Some(format) = format {
        let opts = crate::summary::SummaryOptions::machine(red, settings.engine.attribution.charge_idle);
        let doc = crate::summary::build(&engine.ledger, &settings.impact, &host, &notices, &opts);
        return emit(&crate::summary::render(&doc, format));
    }
    let mut doc = snapshot::build(
        &engine.ledger,
        &settings.impact,
        &host,
        engine.ledger.session_s,
        &notices,
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
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveArgs {
    pub no_color: bool,
    pub ascii: bool,
    /// `--serve[=ADDR]`: also serve Prometheus `/metrics` on this address.
    pub serve: Option<std::net::SocketAddr>,
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

/// The live monitor (`crate::tui`); the session summary is written on `e` and on exit.
pub fn live(settings: &Settings, args: LiveArgs) -> Result<(), CliError> {
    let on_export = summary_hook(settings, host_name(), "session summary", false, CmdlineMode::Full);
    let options = crate::tui::Options {
        no_color: args.no_color,
        ascii: args.ascii,
        ui: settings.ui,
        on_export: Some(on_export),
        host: None,
        checkpoint: settings.export.checkpoint,
    };
    let app = settings.app();
    if let Some(addr) = args.serve {
        let endpoint =
            crate::serve::Endpoint::start(addr, settings.serve.top_processes, settings.impact.clone())
                .map_err(runtime)?;
        if let Some(w) = crate::serve::exposure_warning(&addr) {
            eprintln!("kwtop: {w}");
        }
        let feed = crate::serve::live_feed(&settings.sources, &settings.engine, settings.interval, endpoint);
        return crate::tui::run_with_feed(&app, options, feed)
            .map(|_engine| ())
            .map_err(CliError::from);
    }
    crate::tui::run(&settings.sources, &app, options)
        .map(|_engine| ())
        .map_err(CliError::from)
}
