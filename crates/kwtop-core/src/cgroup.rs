//! Group keys from `/proc/PID/cgroup`.
//!
//! Role: parse the content of `/proc/PID/cgroup` (cgroup v1, v2 or hybrid)
//! into a [`CgroupInfo`]: the sanitized cgroup path plus the grouping keys
//! kwtop aggregates power by (container id, Kubernetes pod UID, Slurm job id,
//! systemd unit).
//!
//! Must not: read files or touch the system (callers pass the content in),
//! panic on any input, return unsanitized text (the path and unit go through
//! [`crate::sanitize::sanitize_str`]; ids are validated as hex / digits), or
//! guess keys from anything but whole path components.

use crate::sanitize::sanitize_str;

/// Cap for the sanitized cgroup path and unit name, in chars.
pub const MAX_CGROUP_PATH_CHARS: usize = 512;

/// Length of the short container id.
const SHORT_ID_LEN: usize = 12;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
/// (Serialized into recordings: empty fields are left out and read back as empty.)
pub struct CgroupInfo {
    /// the cgroup v2 path (line `0::/path`), or the first v1 path found when there is no v2 line; already sanitized
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// short container id (first 12 hex chars) for docker / containerd / cri-o / podman / libpod
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Kubernetes pod UID (dashes restored, e.g. "1f2e...-..."), when the path is under kubepods
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Slurm job id from `job_<id>` in the path
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// systemd unit (e.g. "nginx.service", "session-3.scope") when the path has one as its last .service/.scope component and nothing more specific matched
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl CgroupInfo {
    /// No cgroup known (a kernel thread, an unreadable `/proc/PID/cgroup`).
    pub fn is_empty(&self) -> bool {
        *self == CgroupInfo::default()
    }
}

/// Parses `/proc/PID/cgroup` content. Lines are `hierarchy-id:controllers:path`;
/// malformed lines are ignored; empty or garbage input gives the default value.
///
/// The keys are taken from the selected path (v2, else first v1). If that path
/// yields no container / pod / Slurm key (e.g. hybrid hosts whose v2 path is
/// `/`), the remaining v1 paths are searched for those keys too.
pub fn parse_cgroup(content: &str) -> CgroupInfo {
    let mut v2: Option<&str> = None;
    let mut v1: Vec<&str> = Vec::new();
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if id == "0" && controllers.is_empty() {
            if v2.is_none() {
                v2 = Some(path);
            }
        } else if v1.len() < 64 {
            v1.push(path);
        }
    }

    let Some(primary) = v2.or_else(|| v1.first().copied()) else {
        return CgroupInfo::default();
    };

    let mut info = CgroupInfo {
        path: sanitize_str(primary, MAX_CGROUP_PATH_CHARS),
        ..CgroupInfo::default()
    };
    fill_keys(&mut info, primary);
    if info.container.is_none() && info.pod.is_none() && info.slurm_job.is_none() {
        for path in v1.iter().filter(|p| **p != primary) {
            let mut other = CgroupInfo::default();
            fill_keys(&mut other, path);
            if other.container.is_some() || other.pod.is_some() || other.slurm_job.is_some() {
                info.container = other.container;
                info.pod = other.pod;
                info.slurm_job = other.slurm_job;
                break;
            }
        }
    }
    if info.container.is_none() && info.pod.is_none() && info.slurm_job.is_none() {
        info.unit = find_unit(primary);
    }
    info
}

/// Fills container / pod / slurm_job from one raw path.
fn fill_keys(info: &mut CgroupInfo, path: &str) {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    // Deepest component wins (e.g. docker-in-docker).
    info.container = comps.iter().rev().find_map(|c| container_id(c));
    if comps.iter().any(|c| c.starts_with("kubepods")) {
        info.pod = comps.iter().rev().find_map(|c| pod_uid(c));
    }
    info.slurm_job = comps.iter().rev().find_map(|c| slurm_job(c));
}

/// `docker-<64hex>.scope`, `cri-containerd-<64hex>.scope`, `crio-<64hex>.scope`,
/// `libpod-<64hex>.scope` (also the `-conmon-` variants, and without `.scope`),
/// or a bare `<64hex>` component (cgroupfs drivers: `/docker/<id>`,
/// `/kubepods/.../pod<uid>/<id>`).
fn container_id(comp: &str) -> Option<String> {
    const PREFIXES: [&str; 8] = [
        "docker-",
        "cri-containerd-",
        "containerd-",
        "crio-conmon-",
        "crio-",
        "libpod-conmon-",
        "libpod-",
        "podman-",
    ];
    let base = comp.strip_suffix(".scope").unwrap_or(comp);
    let id = PREFIXES.iter().find_map(|p| base.strip_prefix(p)).unwrap_or(base);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id[..SHORT_ID_LEN].to_ascii_lowercase())
}

/// `kubepods-burstable-pod<uid_with_underscores>.slice`, `kubepods-pod<uid>.slice`
/// (systemd driver) or `pod<uid-with-dashes>` (cgroupfs driver). Static pods may
/// use a 32-hex config hash instead of a UUID.
fn pod_uid(comp: &str) -> Option<String> {
    let base = comp.strip_suffix(".slice").unwrap_or(comp);
    let raw = match base.rfind("-pod") {
        Some(i) if base.starts_with("kubepods") => &base[i + 4..],
        _ => base.strip_prefix("pod")?,
    };
    let uid: String = raw
        .chars()
        .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
        .collect();
    is_pod_uid(&uid).then_some(uid)
}

fn is_pod_uid(uid: &str) -> bool {
    let b = uid.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        }),
        _ => false,
    }
}

/// `job_<digits>`.
fn slurm_job(comp: &str) -> Option<String> {
    let id = comp.strip_prefix("job_")?;
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

/// The deepest `.service` / `.scope` component, sanitized.
fn find_unit(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| {
            c.strip_suffix(".service")
                .or_else(|| c.strip_suffix(".scope"))
                .is_some_and(|name| !name.is_empty())
        })
        .map(|c| sanitize_str(c, MAX_CGROUP_PATH_CHARS))
}

#[cfg(test)]
mod tests;
