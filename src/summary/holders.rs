//! The idle-holder part of a summary: one row per (process, GPU) a process was flagged idle on,
//! exited holders folded per command included, so every total of the summary holds their waste.

use serde::{Deserialize, Serialize};

use super::SummaryOptions;
use crate::figures;
use crate::impact::ImpactParams;
use crate::ledger::{Ledger, ProcEntry};

/// One process idle on one GPU (a process idle on two GPUs has two rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleHolderSummary {
    pub pid: u32,
    pub user: String,
    pub command: String,
    pub state: String,
    /// The GPU it held idle (empty in summaries written before kwtop judged per GPU).
    #[serde(default)]
    pub device: String,
    /// Length of the current (or last) idle streak on that GPU, seconds.
    pub idle_s: f64,
    /// Memory it held on that GPU at its last sample, bytes.
    pub gpu_mem_bytes: Option<u64>,
    /// Energy charged on that GPU while it was flagged idle there, joules.
    pub wasted_j: f64,
    pub wasted_kwh: f64,
    pub wasted_co2e_g: f64,
    /// Exited idle holders folded together per command (pid 0) to bound memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded_count: Option<u64>,
}

/// One row per (process, GPU) it was flagged idle on, folded exited holders included (machine
/// scope), most waste first.
pub(super) fn idle_holder_rows(
    ledger: &Ledger,
    impact: &ImpactParams,
    opts: &SummaryOptions,
) -> Vec<IdleHolderSummary> {
    let in_scope = |e: &&ProcEntry| opts.members.as_ref().is_none_or(|m| m.contains(&e.key));
    let row = |pid, user: &str, command: &str, state: &str, device: &str, wasted_j: f64| IdleHolderSummary {
        pid,
        user: user.into(),
        command: command.into(),
        state: state.into(),
        device: device.into(),
        idle_s: 0.0,
        gpu_mem_bytes: None,
        wasted_j,
        wasted_kwh: impact.kwh(wasted_j),
        wasted_co2e_g: impact.co2e_g(wasted_j),
        folded_count: None,
    };
    let mut v: Vec<IdleHolderSummary> = Vec::new();
    for e in ledger.processes().filter(in_scope) {
        for g in e.idle().idle_gpus() {
            let mut r = row(
                e.key.pid,
                &e.info.user,
                &e.info.comm,
                figures::state(e),
                &g.device,
                g.idle.wasted_j,
            );
            r.idle_s = g.idle.streak_s;
            r.gpu_mem_bytes = g.mem_bytes;
            v.push(r);
        }
    }
    if opts.members.is_none() {
        for (comm, f) in ledger.folded() {
            for (d, j) in ledger.devices.iter().zip(&f.idle_wasted_by_dev) {
                if *j > 0.0 {
                    let mut r = row(0, "", comm, "exited", &d.id, *j);
                    r.folded_count = Some(f.count);
                    v.push(r);
                }
            }
        }
    }
    v.sort_by(|a, b| {
        b.wasted_j
            .total_cmp(&a.wasted_j)
            .then(a.pid.cmp(&b.pid))
            .then_with(|| a.device.cmp(&b.device))
    });
    v
}
