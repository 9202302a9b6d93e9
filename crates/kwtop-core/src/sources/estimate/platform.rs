//! What the estimate runs on: a VM or not (the `hypervisor` CPU flag, DMI, the socket layout), the
//! cloud provider (DMI), and the logical CPUs this system may use (online CPUs, the process's
//! affinity, a cgroup v2 `cpu.max` or v1 CFS quota).
//!
//! Roots are configuration (`[sources] proc_root`, `sysfs_root`), so fixture trees stand in for
//! `/proc/self/{cgroup,status}`, `/sys/class/dmi/id/*`, `/sys/devices/system/cpu/online` and
//! `/sys/fs/cgroup`. A missing file means "not known here"; a file that exists but cannot be read or
//! parsed is named in [`Platform::notes`].

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::cpuinfo::CpuInfo;
use crate::sanitize::sanitize_str;

/// A cloud whose own per-vCPU average applies when the microarchitecture is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
}

/// Azure's DMI chassis asset tag (the constant cloud-init's Azure data source checks).
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// A cgroup CPU quota as a whole number of CPUs (rounded up) and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub cpus: usize,
    pub what: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Platform {
    /// Why this looks like a VM ("hypervisor CPU flag, DMI QEMU"); `None` = no sign of one.
    pub vm: Option<String>,
    pub provider: Option<Provider>,
    /// DMI `sys_vendor product_name`, sanitized, when readable.
    pub dmi: Option<String>,
    /// `/sys/devices/system/cpu/online`.
    pub online: Option<usize>,
    /// `Cpus_allowed_list` of `/proc/self/status`.
    pub affinity: Option<usize>,
    pub quota: Option<Quota>,
    /// Files that exist but could not be read or parsed.
    pub notes: Vec<String>,
}

impl Platform {
    /// Logical CPUs this system may use: the smallest of online, affinity and quota; `fallback`
    /// (the `/proc/cpuinfo` count) when none of them is known. At least 1.
    pub fn usable(&self, fallback: usize) -> usize {
        [self.online, self.affinity, self.quota.as_ref().map(|q| q.cpus)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(fallback)
            .max(1)
    }

    /// What the count came from, for the notice.
    pub fn usable_why(&self, fallback: usize) -> String {
        let show = |v: Option<usize>| v.map_or("unknown".to_string(), |n| n.to_string());
        format!(
            "{} logical CPU(s) usable: online {}, affinity {}, cgroup quota {}{}",
            self.usable(fallback),
            show(self.online),
            show(self.affinity),
            self.quota
                .as_ref()
                .map_or("none".to_string(), |q| format!("{} ({})", q.cpus, q.what)),
            if self.online.is_none() {
                format!(", /proc/cpuinfo {fallback}")
            } else {
                String::new()
            }
        )
    }
}

/// Look at the system under the given roots.
pub fn detect(proc_root: &Path, sysfs_root: &Path, cpu: &CpuInfo) -> Platform {
    let mut p = Platform::default();
    let mut vm: Vec<String> = Vec::new();
    if cpu.hypervisor {
        vm.push("hypervisor CPU flag".into());
    }
    let dmi_dir = sysfs_root.join("class/dmi/id");
    let vendor = read_value(&dmi_dir.join("sys_vendor"), &mut p.notes);
    let product = read_value(&dmi_dir.join("product_name"), &mut p.notes);
    if vendor.is_some() || product.is_some() {
        let (v, pr) = (vendor.unwrap_or_default(), product.unwrap_or_default());
        let tag = read_value(&dmi_dir.join("chassis_asset_tag"), &mut p.notes).unwrap_or_default();
        let (hv, provider) = classify_dmi(&v, &pr, &tag);
        p.provider = provider;
        p.dmi = Some(sanitize_str(format!("{v} {pr}").trim(), 80));
        if let Some(hv) = hv {
            vm.push(format!("DMI {hv}"));
        }
    }
    if cpu.one_cpu_per_socket() {
        vm.push(format!("{} sockets of one CPU each", cpu.sockets));
    }
    p.vm = (!vm.is_empty()).then(|| vm.join(", "));
    p.online = read_value(&sysfs_root.join("devices/system/cpu/online"), &mut p.notes)
        .and_then(|s| count_cpu_list(&s));
    p.affinity = read_value(&proc_root.join("self/status"), &mut p.notes).and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(count_cpu_list)
    });
    p.quota = cgroup_quota(proc_root, sysfs_root, &mut p.notes);
    p
}

/// A small sysfs/procfs text file, trimmed; `None` when absent (not noted) or unreadable (noted).
fn read_value(path: &Path, notes: &mut Vec<String>) -> Option<String> {
    match std::fs::read(path) {
        Ok(b) if b.len() <= 1 << 16 => Some(String::from_utf8_lossy(&b).trim().to_string()),
        Ok(_) => {
            notes.push(format!("{}: too large, ignored", path.display()));
            None
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => None,
        Err(e) => {
            notes.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Hypervisor name and cloud provider from DMI strings.
pub fn classify_dmi(
    vendor: &str,
    product: &str,
    asset_tag: &str,
) -> (Option<&'static str>, Option<Provider>) {
    let v = vendor.to_ascii_lowercase();
    let p = product.to_ascii_lowercase();
    let has = |s: &str| v.contains(s) || p.contains(s);
    if v.starts_with("amazon ec2") {
        // `m5.metal` and friends are bare metal under the same vendor string.
        let hv = (!p.ends_with(".metal")).then_some("Amazon EC2");
        return (hv, Some(Provider::Aws));
    }
    if v.starts_with("google") && p.contains("google compute engine") {
        return (Some("Google Compute Engine"), Some(Provider::Gcp));
    }
    if v.starts_with("microsoft corporation") && p == "virtual machine" {
        let azure = asset_tag == AZURE_ASSET_TAG;
        return (
            Some(if azure { "Azure" } else { "Hyper-V" }),
            azure.then_some(Provider::Azure),
        );
    }
    let hv = if has("qemu") || has("kvm") {
        Some("QEMU/KVM")
    } else if has("vmware") {
        Some("VMware")
    } else if v.starts_with("xen") || p.contains("hvm domu") {
        Some("Xen")
    } else if v.starts_with("innotek") || p.contains("virtualbox") {
        Some("VirtualBox")
    } else if has("parallels") {
        Some("Parallels")
    } else if has("openstack") {
        Some("OpenStack")
    } else if has("bhyve") {
        Some("bhyve")
    } else if has("bochs") {
        Some("Bochs")
    } else if v.starts_with("digitalocean") {
        Some("DigitalOcean")
    } else if v.starts_with("hetzner") && p.contains("vserver") {
        Some("Hetzner vServer")
    } else {
        None
    };
    (hv, None)
}

/// Count the CPUs in a kernel CPU list such as `0-3,8,10-11`.
pub fn count_cpu_list(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let a = part.parse::<usize>().ok()?;
                (a, a)
            }
        };
        if b < a || b - a >= 1 << 20 {
            return None;
        }
        n = n.checked_add(b - a + 1)?;
    }
    Some(n)
}

/// Whole CPUs a `quota`/`period` grants: rounded up, at least 1.
fn quota_cpus(quota: u64, period: u64) -> Option<usize> {
    if period == 0 {
        return None;
    }
    Some((quota.div_ceil(period) as usize).max(1))
}

/// cgroup v2 `cpu.max`: `max 100000` (no limit) or `150000 100000`. `Err` for anything else.
pub fn parse_cpu_max(s: &str) -> Result<Option<usize>, String> {
    let mut it = s.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some("max"), _, None) => Ok(None),
        (Some(q), Some(p), None) => match (q.parse::<u64>(), p.parse::<u64>()) {
            (Ok(q), Ok(p)) if p > 0 => Ok(quota_cpus(q, p)),
            _ => Err(format!("cannot parse '{}'", sanitize_str(s, 40))),
        },
        _ => Err(format!("cannot parse '{}'", sanitize_str(s, 40))),
    }
}

/// Directories to look in for one `/proc/self/cgroup` line, leaf first, ending at the hierarchy's
/// mount root (inside a container without a cgroup namespace the host path does not exist, and the
/// container's own cgroup is the mount root).
fn walk(base: &Path, path: &str) -> Vec<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return vec![base.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = rel.ancestors().take(64).map(|a| base.join(a)).collect();
    if dirs.is_empty() {
        dirs.push(base.to_path_buf());
    }
    dirs
}

/// The tightest CPU quota on this process's cgroup and its ancestors, v2 or v1.
fn cgroup_quota(proc_root: &Path, sysfs_root: &Path, notes: &mut Vec<String>) -> Option<Quota> {
    let text = read_value(&proc_root.join("self/cgroup"), notes)?;
    let fs = sysfs_root.join("fs/cgroup");
    let mut best: Option<Quota> = None;
    let mut consider = |cpus: usize, what: String| {
        if best.as_ref().is_none_or(|b| cpus < b.cpus) {
            best = Some(Quota { cpus, what });
        }
    };
    for line in text.lines().take(64) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrl.is_empty() {
            for base in [fs.clone(), fs.join("unified")] {
                for dir in walk(&base, path) {
                    let f = dir.join("cpu.max");
                    let Some(s) = read_value(&f, notes) else {
                        continue;
                    };
                    match parse_cpu_max(&s) {
                        Ok(Some(n)) => consider(n, format!("cgroup cpu.max '{s}'")),
                        Ok(None) => {}
                        Err(why) => notes.push(format!("{}: {why}", f.display())),
                    }
                }
            }
        } else if ctrl.split(',').any(|c| c == "cpu") {
            let mut bases: Vec<PathBuf> = Vec::new();
            for b in [fs.join(ctrl), fs.join("cpu"), fs.join("cpu,cpuacct")] {
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
            for base in bases {
                for dir in walk(&base, path) {
                    let q = read_value(&dir.join("cpu.cfs_quota_us"), notes);
                    let p = read_value(&dir.join("cpu.cfs_period_us"), notes);
                    let (Some(q), Some(p)) = (q, p) else {
                        continue;
                    };
                    match (q.parse::<i64>(), p.parse::<u64>()) {
                        (Ok(q), Ok(per)) if q > 0 && per > 0 => {
                            if let Some(n) = quota_cpus(q as u64, per) {
                                consider(n, format!("cgroup v1 cpu.cfs_quota_us {q} / period {per}"));
                            }
                        }
                        (Ok(_), Ok(_)) => {}
                        _ => notes.push(format!(
                            "{}: cannot parse quota '{}' / period '{}'",
                            dir.display(),
                            sanitize_str(&q, 24),
                            sanitize_str(&p, 24)
                        )),
                    }
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("5"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("0-x"), None);
        assert_eq!(count_cpu_list("0-99999999999"), None);
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Ok(Some(2)));
        assert_eq!(parse_cpu_max("200000 100000"), Ok(Some(2)));
        assert_eq!(
            parse_cpu_max("1000 100000"),
            Ok(Some(1)),
            "a sliver is still one CPU"
        );
        assert_eq!(parse_cpu_max("max 100000"), Ok(None));
        assert_eq!(parse_cpu_max("max"), Ok(None));
        assert!(parse_cpu_max("150000 0").is_err());
        assert!(parse_cpu_max("lots").is_err());
    }

    #[test]
    fn dmi_strings() {
        assert_eq!(
            classify_dmi("QEMU", "Standard PC (Q35 + ICH9, 2009)", ""),
            (Some("QEMU/KVM"), None)
        );
        assert_eq!(
            classify_dmi("Amazon EC2", "m5.large", ""),
            (Some("Amazon EC2"), Some(Provider::Aws))
        );
        assert_eq!(
            classify_dmi("Amazon EC2", "m5.metal", ""),
            (None, Some(Provider::Aws))
        );
        assert_eq!(
            classify_dmi("Google", "Google Compute Engine", ""),
            (Some("Google Compute Engine"), Some(Provider::Gcp))
        );
        assert_eq!(
            classify_dmi("Microsoft Corporation", "Virtual Machine", AZURE_ASSET_TAG),
            (Some("Azure"), Some(Provider::Azure))
        );
        assert_eq!(
            classify_dmi("Microsoft Corporation", "Virtual Machine", ""),
            (Some("Hyper-V"), None)
        );
        assert_eq!(
            classify_dmi("VMware, Inc.", "VMware Virtual Platform", "").0,
            Some("VMware")
        );
        assert_eq!(classify_dmi("Xen", "HVM domU", "").0, Some("Xen"));
        assert_eq!(classify_dmi("Dell Inc.", "PowerEdge R750", ""), (None, None));
    }

    #[test]
    fn walk_stays_under_the_mount() {
        let base = Path::new("/s/fs/cgroup");
        assert_eq!(
            walk(base, "/a/b"),
            vec![base.join("a/b"), base.join("a"), base.join("")]
        );
        assert_eq!(walk(base, "/"), vec![base.join("")]);
        assert_eq!(walk(base, "/a/../../etc"), vec![base.to_path_buf()]);
    }
}
