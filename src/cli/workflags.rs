//! The live work meter's flags (`kwtop --progress-log …`, `kwtop serve --work-metric …`): energy
//! per unit of work while the monitor or the exporter runs. Parsed here, run by
//! [`crate::workmeter`].

use std::path::PathBuf;

use crate::workmeter::{MetricUrl, WorkInput, WorkSpec, parse_metric_url};

/// Flags shared by the live monitor and `kwtop serve`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Energy per unit of work")]
pub struct WorkFlags {
    /// Follow this log (appends, truncation, rotation) and count units of work in it: lines matching --progress, else lines like `1200 tokens`
    #[arg(long, value_name = "FILE", conflicts_with = "work_metric")]
    pub progress_log: Option<PathBuf>,
    /// With --progress-log: lines matching REGEX count units; with a group, its number is the running total
    #[arg(long, value_name = "REGEX", value_parser = super::parse_progress, requires = "progress_log")]
    pub progress: Option<crate::work::ProgressPattern>,
    /// Count units from an inference server's Prometheus counter, e.g. http://127.0.0.1:8000/metrics#vllm:generation_tokens_total
    #[arg(long, value_name = "URL#METRIC", value_parser = parse_metric_url)]
    pub work_metric: Option<MetricUrl>,
    /// The unit of work, singular: step, token, image… (default: the metric's or the log's, else "unit")
    #[arg(long, value_name = "NAME", value_parser = super::parse_unit)]
    pub unit: Option<String>,
    /// Whose energy the units divide: this process and its descendants (default: the log's writers or the metric's listener, else the whole machine)
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

impl WorkFlags {
    /// What to count; `None` without --progress-log or --work-metric. --unit or --pid alone is a
    /// usage error.
    pub fn spec(&self) -> Result<Option<WorkSpec>, String> {
        let input = match (&self.progress_log, &self.work_metric) {
            (Some(path), _) => WorkInput::Log {
                path: path.clone(),
                progress: self.progress.clone(),
            },
            (None, Some(m)) => WorkInput::Metric(m.clone()),
            (None, None) => {
                if self.unit.is_some() || self.pid.is_some() {
                    return Err(
                        "--unit and --pid need --progress-log FILE or --work-metric URL#METRIC".into(),
                    );
                }
                return Ok(None);
            }
        };
        Ok(Some(WorkSpec {
            input,
            unit: self.unit.clone(),
            pid: self.pid,
        }))
    }

    /// Whether any of the flags was given.
    pub fn any(&self) -> bool {
        self.progress_log.is_some()
            || self.work_metric.is_some()
            || self.unit.is_some()
            || self.pid.is_some()
            || self.progress.is_some()
    }
}
