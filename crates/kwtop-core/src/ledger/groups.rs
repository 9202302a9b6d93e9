//! Grouping of ledger entries: by process tree, user, command, container or Slurm job (DESIGN §5).
//!
//! Pure functions over ledger entries; computed on demand for views and exports, never per tick.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Ledger, ProcState};

/// How to group processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Process,
    Tree,
    User,
    Command,
    Container,
    Slurm,
}

impl GroupBy {
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Process,
        GroupBy::Tree,
        GroupBy::User,
        GroupBy::Command,
        GroupBy::Container,
        GroupBy::Slurm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Process => "process",
            GroupBy::Tree => "tree",
            GroupBy::User => "user",
            GroupBy::Command => "command",
            GroupBy::Container => "container",
            GroupBy::Slurm => "slurm",
        }
    }

    /// The next grouping in the cycle (the UI's `g` key).
    pub fn next(self) -> GroupBy {
        let i = GroupBy::ALL.iter().position(|g| *g == self).unwrap_or(0);
        GroupBy::ALL[(i + 1) % GroupBy::ALL.len()]
    }
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub key: String,
    /// Processes in the group (running and exited, folded ones included).
    pub processes: u64,
    pub running: u64,
    pub energy_j: f64,
    /// Current power, watts.
    pub power_w: f64,
    /// Joules per device id.
    pub energy_by_device_j: Vec<(String, f64)>,
}

/// Process names that start a session rather than a workload: the tree root stops below them.
const SESSION_LEADERS: &[&str] = &[
    "init",
    "systemd",
    "sshd",
    "sshd-session",
    "tmux: server",
    "tmux",
    "screen",
    "SCREEN",
    "login",
    "bash",
    "zsh",
    "fish",
    "sh",
    "dash",
    "ksh",
    "tcsh",
    "csh",
    "su",
    "sudo",
    "slurmstepd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "conmon",
    "kthreadd",
    "runuser",
    "mosh-server",
];

/// The top-most ancestor of `pid` that is not a session leader, as (pid, comm).
/// `index` maps pid → (ppid, comm) for the processes visible in one sample.
pub fn tree_root<S: std::hash::BuildHasher>(pid: u32, index: &HashMap<u32, (u32, &str), S>) -> (u32, String) {
    let mut cur = pid;
    let mut comm = index.get(&pid).map(|(_, c)| *c).unwrap_or("");
    // Bounded walk: a corrupt or cyclic ppid chain cannot loop forever.
    for _ in 0..64 {
        let Some(&(ppid, _)) = index.get(&cur) else { break };
        if ppid <= 1 || ppid == cur {
            break;
        }
        let Some(&(_, parent_comm)) = index.get(&ppid) else {
            break;
        };
        if SESSION_LEADERS.contains(&parent_comm) {
            break;
        }
        cur = ppid;
        comm = parent_comm;
    }
    (cur, comm.to_string())
}

impl Ledger {
    /// Group every process (running, exited, folded) by `by`, largest energy first.
    pub fn groups(&self, by: GroupBy) -> Vec<GroupRow> {
        let n = self.devices.len();
        let mut map: HashMap<String, (u64, u64, f64, f64, Vec<f64>)> = HashMap::new();
        for e in self.processes() {
            let key = match by {
                GroupBy::Process => format!("{} {}", e.key.pid, e.info.comm),
                GroupBy::Tree => format!("{} {}", e.tree_root.0, e.tree_root.1),
                GroupBy::User => e.info.user.clone(),
                GroupBy::Command => e.info.comm.clone(),
                GroupBy::Container => container_label(&e.info.cgroup),
                GroupBy::Slurm => e
                    .info
                    .cgroup
                    .slurm_job
                    .as_ref()
                    .map_or_else(|| "(no job)".to_string(), |j| format!("job {j}")),
            };
            let slot = map.entry(key).or_insert_with(|| (0, 0, 0.0, 0.0, vec![0.0; n]));
            slot.0 += 1;
            slot.1 += u64::from(e.state == ProcState::Running);
            slot.2 += e.energy_j;
            slot.3 += e.power_w;
            for (a, b) in slot.4.iter_mut().zip(&e.energy_by_dev) {
                *a += b;
            }
        }
        for (comm, f) in self.folded() {
            let key = match by {
                GroupBy::Command => comm.clone(),
                _ => "(exited, folded)".to_string(),
            };
            let slot = map.entry(key).or_insert_with(|| (0, 0, 0.0, 0.0, vec![0.0; n]));
            slot.0 += f.count;
            slot.2 += f.energy_j;
            for (a, b) in slot.4.iter_mut().zip(&f.energy_by_dev) {
                *a += b;
            }
        }
        let mut rows: Vec<GroupRow> = map
            .into_iter()
            .map(
                |(key, (processes, running, energy_j, power_w, by_dev))| GroupRow {
                    key,
                    processes,
                    running,
                    energy_j,
                    power_w,
                    energy_by_device_j: self.devices.iter().map(|d| d.id.clone()).zip(by_dev).collect(),
                },
            )
            .collect();
        rows.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j).then_with(|| a.key.cmp(&b.key)));
        rows
    }
}

fn container_label(c: &crate::cgroup::CgroupInfo) -> String {
    if let Some(pod) = &c.pod {
        return format!("pod {pod}");
    }
    if let Some(id) = &c.container {
        return format!("container {id}");
    }
    if let Some(job) = &c.slurm_job {
        return format!("slurm job {job}");
    }
    if let Some(unit) = &c.unit {
        return unit.clone();
    }
    if c.path.is_empty() {
        "(unknown)".to_string()
    } else {
        c.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_root_stops_below_shell() {
        let index: HashMap<u32, (u32, &str)> = [
            (1, (0, "systemd")),
            (100, (1, "sshd")),
            (200, (100, "bash")),
            (300, (200, "torchrun")),
            (301, (300, "python")),
            (302, (301, "pt_data_worker")),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_root(302, &index), (300, "torchrun".to_string()));
        assert_eq!(tree_root(300, &index), (300, "torchrun".to_string()));
        assert_eq!(tree_root(200, &index), (200, "bash".to_string()));
    }

    #[test]
    fn tree_root_survives_cycles_and_missing_parents() {
        let index: HashMap<u32, (u32, &str)> = [(10, (11, "a")), (11, (10, "b")), (20, (999, "orphan"))]
            .into_iter()
            .collect();
        let _ = tree_root(10, &index);
        assert_eq!(tree_root(20, &index), (20, "orphan".to_string()));
    }
}
