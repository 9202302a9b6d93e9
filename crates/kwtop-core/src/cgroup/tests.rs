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
    let content = format!("12:memory:/docker/{HEX}\n11:pids:/docker/{HEX}\n1:name=systemd:/docker/{HEX}\n");
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
    let content =
        "5:memory:/slurm/uid_1000/job_123/step_0/task_1\n4:cpuset:/slurm/uid_1000/job_123/step_0/task_1\n";
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
