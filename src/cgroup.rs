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

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupInfo {
    /// the cgroup v2 path (line `0::/path`), or the first v1 path found when there is no v2 line; already sanitized
    pub path: String,
    /// short container id (first 12 hex chars) for docker / containerd / cri-o / podman / libpod
    pub container: Option<String>,
    /// Kubernetes pod UID (dashes restored, e.g. "1f2e...-..."), when the path is under kubepods
    pub pod: Option<String>,
    /// Slurm job id from `job_<id>` in the path
    pub slurm_job: Option<String>,
    /// systemd unit (e.g. "nginx.service", "session-3.scope") when the path has one as its last .service/.scope component and nothing more specific matched
    pub unit: Option<String>,
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
mod tests {
    use super::*;

    const HEX: &str = "4f9c2b1a7d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    const SHORT: &str = "4f9c2b1a7d3e";
    const POD: &str = "1f2e3d4c-5b6a-7980-1a2b-3c4d5e6f7a8b";

    #[test]
    fn v2_session_scope() {
        let p = "/user.slice/user-1000.slice/session-3.scope";
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(
            i,
            CgroupInfo {
                path: p.into(),
                unit: Some("session-3.scope".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn v2_system_service() {
        let i = parse_cgroup("0::/system.slice/nginx.service\n");
        assert_eq!(i.unit.as_deref(), Some("nginx.service"));
        assert_eq!(i.container, None);
    }

    #[test]
    fn docker_cgroupfs_v1() {
        let content =
            format!("12:memory:/docker/{HEX}\n11:pids:/docker/{HEX}\n1:name=systemd:/docker/{HEX}\n");
        let i = parse_cgroup(&content);
        assert_eq!(i.path, format!("/docker/{HEX}"));
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!((i.pod, i.slurm_job, i.unit), (None, None, None));
    }

    #[test]
    fn docker_systemd_v2() {
        let i = parse_cgroup(&format!("0::/system.slice/docker-{HEX}.scope\n"));
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!(i.unit, None, "container is more specific than the unit");
    }

    #[test]
    fn containerd_k8s_systemd_driver() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e3d4c_5b6a_7980_1a2b_3c4d5e6f7a8b.slice/cri-containerd-{HEX}.scope"
        );
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(i.path, p);
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!(i.pod.as_deref(), Some(POD));
        assert_eq!(i.unit, None);
    }

    #[test]
    fn crio_k8s_systemd_driver() {
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e3d4c_5b6a_7980_1a2b_3c4d5e6f7a8b.slice/crio-{HEX}.scope"
        );
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!(i.pod.as_deref(), Some(POD));
    }

    #[test]
    fn guaranteed_pod_systemd_driver() {
        let p = format!(
            "/kubepods.slice/kubepods-pod1f2e3d4c_5b6a_7980_1a2b_3c4d5e6f7a8b.slice/cri-containerd-{HEX}.scope"
        );
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(i.pod.as_deref(), Some(POD));
    }

    #[test]
    fn k8s_cgroupfs_driver() {
        let p = format!("/kubepods/besteffort/pod{POD}/{HEX}");
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!(i.pod.as_deref(), Some(POD));
        assert_eq!(i.unit, None);
    }

    #[test]
    fn pod_requires_kubepods() {
        let i = parse_cgroup(&format!("0::/something/pod{POD}/x\n"));
        assert_eq!(i.pod, None);
    }

    #[test]
    fn podman_rootless() {
        let p = format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{HEX}.scope");
        let i = parse_cgroup(&format!("0::{p}\n"));
        assert_eq!(i.container.as_deref(), Some(SHORT));
        assert_eq!(i.unit, None);
        assert_eq!(i.pod, None);
    }

    #[test]
    fn slurm_v2() {
        let i = parse_cgroup("0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n");
        assert_eq!(i.slurm_job.as_deref(), Some("4242"));
        assert_eq!(i.unit, None);
        assert_eq!(i.container, None);
    }

    #[test]
    fn slurm_v2_node_prefixed_stepd() {
        let i = parse_cgroup("0::/system.slice/node01_slurmstepd.scope/job_77/step_batch/user/task_0\n");
        assert_eq!(i.slurm_job.as_deref(), Some("77"));
        assert_eq!(i.unit, None);
    }

    #[test]
    fn slurm_v1() {
        let content = "5:memory:/slurm/uid_1000/job_123/step_0/task_1\n4:cpuset:/slurm/uid_1000/job_123/step_0/task_1\n";
        let i = parse_cgroup(content);
        assert_eq!(i.path, "/slurm/uid_1000/job_123/step_0/task_1");
        assert_eq!(i.slurm_job.as_deref(), Some("123"));
        let i = parse_cgroup("4:cpuset:/slurm/uid_1000/job_123/step_0/task_1");
        assert_eq!(i.slurm_job.as_deref(), Some("123"));
    }

    #[test]
    fn v2_preferred_over_v1() {
        let content = "12:memory:/other\n0::/system.slice/cron.service\n";
        let i = parse_cgroup(content);
        assert_eq!(i.path, "/system.slice/cron.service");
        assert_eq!(i.unit.as_deref(), Some("cron.service"));
    }

    #[test]
    fn hybrid_root_v2_uses_v1_keys() {
        let content = format!("12:memory:/docker/{HEX}\n0::/\n");
        let i = parse_cgroup(&content);
        assert_eq!(i.path, "/");
        assert_eq!(i.container.as_deref(), Some(SHORT));
    }

    #[test]
    fn empty_input() {
        assert_eq!(parse_cgroup(""), CgroupInfo::default());
        assert_eq!(parse_cgroup("\n\n"), CgroupInfo::default());
    }

    #[test]
    fn garbage_input() {
        assert_eq!(parse_cgroup("hello world\n::::\nx:y:z\n"), CgroupInfo::default());
        let i = parse_cgroup("0::/docker/nothex\n");
        assert_eq!(i.path, "/docker/nothex");
        assert_eq!(
            (i.container, i.pod, i.slurm_job, i.unit),
            (None, None, None, None)
        );
        // Almost-ids are rejected.
        let i = parse_cgroup(&format!("0::/docker/{}\n", &HEX[..63]));
        assert_eq!(i.container, None);
        let i = parse_cgroup("0::/x/job_12a/.scope\n");
        assert_eq!((i.slurm_job, i.unit), (None, None));
    }

    #[test]
    fn path_with_colons_kept() {
        let i = parse_cgroup("0::/a:b/c.service\n");
        assert_eq!(i.path, "/a:b/c.service");
    }

    #[test]
    fn escape_bytes_in_path_are_sanitized() {
        let i = parse_cgroup("0::/system.slice/evil\x1b]0;pwned\x07\x1b[2J\u{202E}.service\n");
        assert_eq!(i.path, "/system.slice/evil???.service");
        assert_eq!(i.unit.as_deref(), Some("evil???.service"));
        assert!(!i.path.contains("pwned"));
        assert!(!i.path.chars().any(char::is_control));
    }

    #[test]
    fn long_path_is_capped() {
        let long = format!("0::/{}\n", "a".repeat(100_000));
        let i = parse_cgroup(&long);
        assert_eq!(i.path.chars().count(), MAX_CGROUP_PATH_CHARS);
        assert!(i.path.ends_with('…'));
    }

    #[test]
    fn serde_round_trip() -> Result<(), serde_json::Error> {
        let i = parse_cgroup(&format!("0::/system.slice/docker-{HEX}.scope\n"));
        let j = serde_json::to_string(&i)?;
        assert_eq!(serde_json::from_str::<CgroupInfo>(&j)?, i);
        Ok(())
    }
}
