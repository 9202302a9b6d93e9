//! Command line: clap definitions and the subcommands' drivers.
//!
//! Conventions for every subcommand: `--config PATH` before or after it, durations written `500ms`,
//! `2s`, `1m`, `--help` with examples, `--version`. Exit codes: 0 ok, 1 runtime error, 2 usage or
//! config error. Writing to a closed pipe (`kwtop snapshot | head`) exits quietly.

mod commands;
mod replay;
mod run;
mod shell;

mod workflags;

pub use commands::LiveHooks;
pub use workflags::WorkFlags;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, Settings, parse_duration};
use crate::redact::{CmdlineMode, Redactor};

const EXAMPLES: &str = "\
Examples:
  kwtop                              live monitor
  kwtop snapshot --json              one 1-second measurement as JSON (schema kwtop.snapshot/1)
  kwtop snapshot --interval 5s       a 5-second measurement as a table
  kwtop snapshot --json --cmdline full   with unredacted command lines (default: [export] cmdline)
  kwtop record -o run.jsonl --duration 10m --interval 1s
  kwtop report run.jsonl --json      what a recording adds up to
  kwtop report run.jsonl --format md the session summary of a recording (md, json or csv)
  kwtop run -- python train.py       the energy of one command's process tree, like `time`
  kwtop serve                        Prometheus metrics on http://127.0.0.1:9875/metrics
  kwtop --progress-log train.log --progress 'step (\\d+)' --unit step
                                     live monitor with energy per step of a training log
  kwtop --work-metric http://127.0.0.1:8000/metrics#vllm:generation_tokens_total
                                     live monitor with energy per token of a vLLM server
  kwtop --config ./kwtop.toml snapshot
  kwtop completions bash > ~/.local/share/bash-completion/completions/kwtop
  kwtop man > ~/.local/share/man/man1/kwtop.1

Config: ~/.config/kwtop/config.toml (every key is documented in config.example.toml).";

#[derive(Debug, Parser)]
#[command(name = "kwtop", version, about = "Per-process GPU and CPU power, energy and CO2e", after_help = EXAMPLES)]
pub struct Cli {
    /// Config file (default: the platform config dir, e.g. ~/.config/kwtop/config.toml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Live monitor without colours (the NO_COLOR environment variable does the same)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Live monitor with ASCII characters only, for terminals without Unicode
    #[arg(long, global = true)]
    pub ascii: bool,
    /// Live monitor (and replay) showing in the footer what the last tick cost kwtop, in µs of CPU
    /// time of the thread doing each stage: read (sensors and /proc, or the recording), account
    /// (attribution and ledger), draw (the screen rendered and written to the terminal)
    #[arg(long, global = true)]
    pub stats: bool,
    /// Live monitor that also serves Prometheus /metrics, on [serve] listen or --serve=ADDR:PORT
    #[arg(
        long,
        value_name = "ADDR:PORT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub serve: Option<String>,
    #[command(flatten)]
    pub work: WorkFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure one interval and print a table, or JSON with --json
    #[command(
        after_help = "Examples:\n  kwtop snapshot\n  kwtop snapshot --interval 500ms --json | jq '.processes[0]'"
    )]
    Snapshot {
        /// Length of the measured interval (e.g. 500ms, 2s, 1m)
        #[arg(long, default_value = "1s", value_parser = parse_cli_duration)]
        interval: Duration,
        /// Print the kwtop.snapshot/1 JSON document
        #[arg(long)]
        json: bool,
        /// Processes shown in the table
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Command lines shown: full, redacted (secret values as ***) or name (default: [export] cmdline)
        #[arg(long, value_name = "MODE", value_parser = cmdline_mode_parser())]
        cmdline: Option<CmdlineMode>,
    },
    /// Record samples as JSON lines for replay and reports
    #[command(
        after_help = "Examples:\n  kwtop record -o run.jsonl --duration 1h\n  kwtop record -o run.jsonl   (until Ctrl-C)\n  kwtop record -o month.jsonl.zst   (compressed: about 1 MB an hour at 400 processes)"
    )]
    Record {
        /// Output file (JSON lines, schema kwtop.recording/2); compressed with zstd when it ends in .zst,
        /// with gzip when it ends in .gz
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Stop after this long (default: until Ctrl-C or SIGTERM)
        #[arg(long, value_parser = parse_cli_duration)]
        duration: Option<Duration>,
        /// Time between samples (default: [sampling] interval)
        #[arg(long, value_parser = parse_cli_duration)]
        interval: Option<Duration>,
        /// Also account the samples and save the session summary ([export] dir and formats) at the end
        #[arg(long)]
        summary: bool,
        /// A note for the recording's header (repeatable), e.g. --note "H100 run, torch 2.5"
        #[arg(long = "note", value_name = "TEXT")]
        notes: Vec<String>,
        /// Command lines written: full, redacted (secret values as ***) or name (default: [export] cmdline)
        #[arg(long, value_name = "MODE", value_parser = cmdline_mode_parser())]
        cmdline: Option<CmdlineMode>,
        /// Write every process in full every N samples (and first); in between only what changed. 1
        /// writes every sample in full
        #[arg(long, value_name = "N", default_value_t = crate::recording::DEFAULT_FULL_EVERY,
              value_parser = clap::value_parser!(u32).range(1..=86_400))]
        full_every: u32,
    },
    /// Show the live monitor over a recording
    #[command(
        after_help = "Examples:\n  kwtop replay run.jsonl\n  kwtop replay run.jsonl --speed 60   (a minute per second)"
    )]
    Replay {
        /// A recording made by `kwtop record` (plain, .zst or .gz)
        file: PathBuf,
        /// Recording seconds per wall-clock second
        #[arg(long, default_value = "1", value_parser = replay::parse_speed)]
        speed: f64,
    },
    /// Account a recording and print what it adds up to
    #[command(after_help = "Examples:\n  kwtop report run.jsonl\n  kwtop report run.jsonl --json")]
    Report {
        /// A recording made by `kwtop record` (plain, .zst or .gz), or a JSON summary (kwtop.summary/1) to
        /// re-render
        file: PathBuf,
        /// Print the kwtop.snapshot/1 JSON document of the whole recording
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Print the session summary as Markdown, JSON (kwtop.summary/1) or CSV (one row per process)
        #[arg(long, value_enum)]
        format: Option<crate::summary::Format>,
        /// Processes shown in the table
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Run a command and account the energy of its whole process tree, like `time`
    #[command(
        after_help = "When the command exits, the full summary is saved to the [export] dir and a short block\n(energy, CO2e, work, where the summary went) is printed to stderr; stdout stays the command's.\nkwtop exits with the command's status (128+N if a signal killed it).\n\nWork: with --progress, lines of the command's output (split on \\n and \\r) matching REGEX\ncount units; the command may also append counts to the file named by $KWTOP_WORK_FILE\n(lines like `1200 tokens`). The summary then gives the energy per unit.\n\nExamples:\n  kwtop run -- python train.py --epochs 3\n  kwtop run --progress 'step (\\d+)' --unit step -- python train.py\n  kwtop run --progress '(\\d+)/\\d+' -- python tqdm_job.py   (tqdm bars)\n  kwtop run -o energy.md -- make -j8\n  kwtop run --report json --interval 500ms -- ./bench"
    )]
    Run {
        /// Also write the summary to this file (format from --format or the extension, else md)
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Format of the -o file: md, json or csv (default: its extension, else md); without -o, as --report
        #[arg(long, value_enum)]
        format: Option<crate::summary::Format>,
        /// What to print on stderr at the end: short (like `time`), the full summary (md, json, csv), or none
        #[arg(long, value_enum, value_name = "WHAT")]
        report: Option<run::Report>,
        /// Count units of work in the command's output: lines matching REGEX; with a group, its number is the running total
        #[arg(long, value_name = "REGEX", value_parser = parse_progress)]
        progress: Option<crate::work::ProgressPattern>,
        /// The unit of work counted, singular: step, token, image… (default: the work file's, else "unit")
        #[arg(long, value_name = "NAME", value_parser = parse_unit)]
        unit: Option<String>,
        /// Time between samples (default: [sampling] interval)
        #[arg(long, value_parser = parse_cli_duration)]
        interval: Option<Duration>,
        /// The command and its arguments (after --)
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Serve Prometheus metrics (GET /metrics) until Ctrl-C or SIGTERM, without the live monitor
    #[command(
        after_help = "Loopback (127.0.0.1:9875, [serve] listen) unless told otherwise; another address exposes\nprocess names and users to its network and prints a warning.\n\nExamples:\n  kwtop serve\n  kwtop serve --listen 127.0.0.1:9100 --interval 5s\n  kwtop serve --work-metric http://127.0.0.1:8000/metrics#vllm:generation_tokens_total\n  curl -s localhost:9875/metrics | grep kwtop_process_power_watts"
    )]
    Serve {
        /// Address to listen on (default: [serve] listen, 127.0.0.1:9875)
        #[arg(long, value_name = "ADDR:PORT", value_parser = crate::serve::parse_listen)]
        listen: Option<std::net::SocketAddr>,
        /// Time between samples (default: [sampling] interval)
        #[arg(long, value_parser = parse_cli_duration)]
        interval: Option<Duration>,
        #[command(flatten)]
        work: WorkFlags,
    },
    /// Print a shell completion script to stdout (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  kwtop completions bash > ~/.local/share/bash-completion/completions/kwtop\n  kwtop completions zsh > ~/.zfunc/_kwtop   (a directory on $fpath)\n  kwtop completions fish > ~/.config/fish/completions/kwtop.fish"
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout
    #[command(
        after_help = "Examples:\n  kwtop man > ~/.local/share/man/man1/kwtop.1\n  kwtop man | man -l -"
    )]
    Man,
}

/// `--progress REGEX`, compiled (a bad pattern is a usage error before the command starts).
fn parse_progress(s: &str) -> Result<crate::work::ProgressPattern, String> {
    crate::work::ProgressPattern::new(s).map_err(|e| e.to_string())
}

/// `--unit NAME`: one word, made singular.
fn parse_unit(s: &str) -> Result<String, String> {
    crate::work::unit_name(s).ok_or_else(|| {
        format!("invalid unit '{s}': one word of at most 32 letters, digits, '_', '-', '.' or '/'")
    })
}

/// `full`, `redacted` or `name`, listed for `--help` and the completions.
fn cmdline_mode_parser() -> impl clap::builder::TypedValueParser<Value = CmdlineMode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["full", "redacted", "name"]).map(|s| match s.as_str() {
        "full" => CmdlineMode::Full,
        "name" => CmdlineMode::Name,
        _ => CmdlineMode::Redacted,
    })
}

/// The command-line policy of outputs that leave the screen: `[export]`'s, with `--cmdline`'s mode.
fn redactor(settings: &Settings, mode: Option<CmdlineMode>) -> Redactor {
    let mut red = settings.export.redactor.clone();
    if let Some(m) = mode {
        red.mode = m;
    }
    red
}

fn parse_cli_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("'{s}' is too short: use at least 10ms"));
    }
    Ok(d)
}

/// Errors a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Runtime(String),
    /// Exit with this status without a message (e.g. `run` passing on its command's status).
    #[error("exit status {0}")]
    Exit(i32),
}

impl From<crate::tui::TuiError> for CliError {
    fn from(e: crate::tui::TuiError) -> Self {
        match e {
            crate::tui::TuiError::Runtime(m) => CliError::Runtime(m),
            crate::tui::TuiError::Exit(code) => CliError::Exit(code),
        }
    }
}

impl From<crate::serve::ServeError> for CliError {
    fn from(e: crate::serve::ServeError) -> Self {
        CliError::Runtime(e.0)
    }
}

/// Print to stdout; a closed pipe is not an error worth a message.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(CliError::Runtime(format!("cannot write to stdout: {e}"))),
    }
}

pub use crate::sources::host_name;

/// Machine-scope summary options: `[export]`'s command-line policy, `[attribution] charge_idle`.
fn summary_options(settings: &Settings) -> crate::summary::SummaryOptions {
    crate::summary::SummaryOptions::machine(
        settings.export.redactor.clone(),
        settings.engine.attribution.charge_idle,
    )
}

/// The `kwtop` command: parse the command line and the config, run, return the exit status.
pub fn main() -> i32 {
    main_with(LiveHooks::default())
}

/// [`main`] with `hooks` added to the live monitor (fault-injection tests: `examples/faults.rs`).
pub fn main_with(hooks: LiveHooks) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // Generated from the definitions above: no config needed (nor a broken one in the way).
    match cli.command {
        Some(Command::Completions { shell }) => return exit_code(shell::completions(shell)),
        Some(Command::Man) => return exit_code(shell::man()),
        _ => {}
    }
    let settings = match config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kwtop: {e}");
            return 2;
        }
    };
    let serve = match cli.serve.as_deref() {
        None => None,
        Some("") => Some(settings.serve.listen),
        Some(a) => match crate::serve::parse_listen(a) {
            Ok(addr) => Some(addr),
            Err(e) => {
                eprintln!("kwtop: {e}");
                return 2;
            }
        },
    };
    // The work flags before a subcommand belong to the live monitor (serve has its own).
    if cli.work.any() && cli.command.is_some() {
        eprintln!(
            "kwtop: --progress-log, --work-metric, --unit and --pid before a subcommand are the live monitor's; \
             for the exporter put them after it: kwtop serve --progress-log FILE"
        );
        return 2;
    }
    let work = match cli.work.spec() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("kwtop: {e}");
            return 2;
        }
    };
    let live = commands::LiveArgs {
        no_color: cli.no_color,
        ascii: cli.ascii,
        stats: cli.stats,
        serve,
        work,
    };
    exit_code(run(cli.command, &settings, live, hooks))
}

/// The exit code of a command's result, with its message on stderr.
fn exit_code(result: Result<(), CliError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(CliError::Config(e)) => {
            eprintln!("kwtop: {e}");
            2
        }
        Err(CliError::Runtime(e)) => {
            eprintln!("kwtop: {e}");
            1
        }
        Err(CliError::Exit(code)) => code,
    }
}

fn run(
    cmd: Option<Command>,
    settings: &Settings,
    live: commands::LiveArgs,
    hooks: LiveHooks,
) -> Result<(), CliError> {
    match cmd {
        None => commands::live(settings, live, hooks),
        Some(Command::Snapshot {
            interval,
            json,
            top,
            cmdline,
        }) => commands::snapshot(settings, interval, json, top, &redactor(settings, cmdline)),
        Some(Command::Record {
            output,
            duration,
            interval,
            summary,
            notes,
            cmdline,
            full_every,
        }) => commands::record(
            settings,
            &commands::RecordArgs {
                output,
                duration,
                interval: interval.unwrap_or(settings.interval),
                summary,
                notes,
                redactor: redactor(settings, cmdline),
                full_every,
            },
        ),
        Some(Command::Replay { file, speed }) => replay::replay(settings, &file, speed, live),
        Some(Command::Report {
            file,
            json,
            format,
            top,
        }) => commands::report(settings, &file, json, format, top),
        Some(Command::Run {
            output,
            format,
            report,
            progress,
            unit,
            interval,
            command,
        }) => run::run(
            settings,
            &run::RunArgs {
                report: run::Report::resolve(report, format, output.as_deref()),
                output,
                format,
                interval: interval.unwrap_or(settings.interval),
                work: run::WorkArgs { progress, unit },
                command,
            },
        ),
        Some(Command::Serve {
            listen,
            interval,
            work,
        }) => {
            let params = crate::serve::ServeParams {
                listen: listen.unwrap_or(settings.serve.listen),
                ..settings.serve.clone()
            };
            let work = match work.spec() {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("kwtop: {e}");
                    return Err(CliError::Exit(2));
                }
            };
            crate::serve::run(
                &params,
                &settings.sources,
                &settings.engine,
                &settings.impact,
                interval.unwrap_or(settings.interval),
                work.as_ref(),
            )
            .map_err(CliError::from)
        }
        Some(Command::Completions { shell }) => shell::completions(shell),
        Some(Command::Man) => shell::man(),
    }
}
