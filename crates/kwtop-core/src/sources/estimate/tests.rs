//! The estimate over fixture trees shaped like the kernel's files: `proc/cpuinfo`,
//! `proc/self/{status,cgroup}`, `sys/class/dmi/id/*`, `sys/devices/system/cpu/online`,
//! `sys/fs/cgroup/…`. Nothing here reads this machine.

use std::path::{Path, PathBuf};

use super::*;

struct Tree {
    dir: tempfile::TempDir,
}

/// One `/proc/cpuinfo` processor block.
struct Cpu<'a> {
    name: &'a str,
    vendor: &'a str,
    family: u32,
    model: u32,
    hypervisor: bool,
}

const EPYC_MASKED: Cpu = Cpu {
    name: "AMD EPYC",
    vendor: "AuthenticAMD",
    family: 25,
    model: 1,
    hypervisor: true,
};

impl Tree {
    fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }
    fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
        self
    }
    /// `n` logical CPUs; `socket(i)` gives processor i's `physical id`. Online CPUs match.
    fn cpus(&self, c: &Cpu, n: usize, socket: impl Fn(usize) -> usize) -> &Self {
        let flags = if c.hypervisor {
            "fpu vme de pse tsc msr pae hypervisor lahf_lm"
        } else {
            "fpu vme de pse tsc msr pae lahf_lm"
        };
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "processor\t: {i}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\n\
                     model name\t: {}\nstepping\t: 1\nphysical id\t: {}\nflags\t\t: {flags}\n\n",
                    c.vendor,
                    c.family,
                    c.model,
                    c.name,
                    socket(i)
                )
            })
            .collect();
        self.write("proc/cpuinfo", &text);
        self.write("sys/devices/system/cpu/online", &format!("0-{}\n", n - 1))
    }
    fn dmi(&self, vendor: &str, product: &str) -> &Self {
        self.write("sys/class/dmi/id/sys_vendor", &format!("{vendor}\n"));
        self.write("sys/class/dmi/id/product_name", &format!("{product}\n"))
    }
    fn source(&self, cfg: &EstimateConfig) -> EstimateSource {
        EstimateSource::new(&self.proc(), &self.sys(), cfg)
    }
    fn assumed(&self) -> EstimateSource {
        self.source(&EstimateConfig::default())
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn reading(s: &mut EstimateSource) -> DeviceReading {
    let mut r = s.read();
    assert_eq!(r.len(), 1);
    r.remove(0)
}

#[test]
fn bare_metal_known_model_is_tdp_times_sockets() {
    let t = Tree::new();
    let epyc = Cpu {
        name: "AMD EPYC 7763 64-Core Processor",
        vendor: "AuthenticAMD",
        family: 25,
        model: 1,
        hypervisor: false,
    };
    t.cpus(&epyc, 256, |i| i / 128);
    let mut s = t.assumed();
    assert!(close(s.estimate.tdp_w, 2.0 * 280.0), "{}", s.estimate.tdp_w);
    assert!(close(s.estimate.idle_fraction, 0.1));
    assert_eq!(s.assumption.label, "2 × 280 W TDP (CodeCarbon)");
    let r = reading(&mut s);
    assert_eq!(
        r.name,
        "AMD EPYC 7763 64-Core Processor, ~ 2 × 280 W TDP (CodeCarbon)"
    );
    assert_eq!(r.power_limit_w, Some(560.0));
    assert!(!s.describe().contains("VM ("), "{}", s.describe());
}

#[test]
fn known_model_in_a_vm_shares_the_package_tdp_by_threads() {
    let t = Tree::new();
    let c = Cpu {
        name: "AMD EPYC 7543 32-Core Processor",
        vendor: "AuthenticAMD",
        family: 25,
        model: 1,
        hypervisor: true,
    };
    t.cpus(&c, 2, |_| 0).dmi("QEMU", "Standard PC (Q35 + ICH9, 2009)");
    let s = t.assumed();
    // 225 W package of 64 threads, 2 visible.
    assert!(
        close(s.estimate.tdp_w, 225.0 * 2.0 / 64.0),
        "{}",
        s.estimate.tdp_w
    );
    assert_eq!(s.assumption.label, "2 of 64 threads × 225 W TDP, VM (CodeCarbon)");
    let d = s.describe();
    assert!(
        d.contains("hypervisor CPU flag") && d.contains("DMI QEMU/KVM"),
        "{d}"
    );
    assert!(d.contains("32 cores / 64 threads"), "{d}");
}

#[test]
fn unknown_model_in_a_vm_uses_per_vcpu_coefficients() {
    let t = Tree::new();
    let c = Cpu {
        name: "Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz",
        vendor: "GenuineIntel",
        family: 6,
        model: 0x55,
        hypervisor: true,
    };
    t.cpus(&c, 4, |_| 0).dmi("Amazon EC2", "m5.xlarge");
    let mut s = t.assumed();
    assert!(close(s.estimate.tdp_w, 4.0 * 4.26), "{}", s.estimate.tdp_w);
    assert!(close(s.estimate.idle_fraction, 0.65 / 4.26));
    assert_eq!(s.assumption.label, "4 vCPUs × 0.65–4.26 W, VM (CCF Skylake)");
    // Idle and full load are n × min and n × max.
    assert!(close(s.estimate.power_w(0.0), 4.0 * 0.65));
    assert!(close(s.estimate.power_w(1.0), 4.0 * 4.26));
    let r = reading(&mut s);
    assert_eq!(
        r.name,
        "Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz, ~ 4 vCPUs × 0.65–4.26 W, VM (CCF Skylake)"
    );
    assert!(
        s.describe().contains("Cloud Carbon Footprint"),
        "{}",
        s.describe()
    );
}

#[test]
fn unknown_microarchitecture_uses_the_providers_average() {
    let mystery = Cpu {
        name: "Mystery 9000",
        vendor: "GenuineIntel",
        family: 6,
        model: 0xee,
        hypervisor: true,
    };
    let t = Tree::new();
    t.cpus(&mystery, 2, |_| 0);
    assert_eq!(
        t.assumed().assumption.label,
        "2 vCPUs × 0.74–3.5 W, VM (CCF AWS average)",
        "no DMI: the AWS average"
    );
    t.dmi("Google", "Google Compute Engine");
    let s = t.assumed();
    assert_eq!(s.assumption.label, "2 vCPUs × 0.68–4.11 W, VM (CCF GCP median)");
    assert!(close(s.estimate.tdp_w, 2.0 * 4.11));
}

#[test]
fn masked_epyc_maps_by_family_and_model() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 2, |_| 0);
    let s = t.assumed();
    assert_eq!(
        s.assumption.label,
        "2 vCPUs × 0.45–2.02 W, VM (CCF AMD EPYC 3rd Gen)"
    );
    assert!(close(s.estimate.tdp_w, 4.04));
    assert!(close(s.estimate.idle_fraction, 0.45 / 2.02));
    assert!(
        s.describe().contains("AuthenticAMD family 25 model 1"),
        "{}",
        s.describe()
    );
}

#[test]
fn a_socket_per_vcpu_is_not_a_socket_count() {
    // Known model, one vCPU per socket, no hypervisor flag and no DMI: the layout gives it away.
    let t = Tree::new();
    let c = Cpu {
        name: "AMD EPYC 7763 64-Core Processor",
        vendor: "AuthenticAMD",
        family: 25,
        model: 1,
        hypervisor: false,
    };
    t.cpus(&c, 8, |i| i);
    let s = t.assumed();
    assert!(
        close(s.estimate.tdp_w, 280.0 * 8.0 / 128.0),
        "{}",
        s.estimate.tdp_w
    );
    assert!(
        s.describe().contains("8 sockets of one CPU each"),
        "{}",
        s.describe()
    );
    // Unknown model, same layout: per-vCPU watts, never 8 × 85 W.
    let t = Tree::new();
    t.cpus(
        &Cpu {
            name: "Mystery 9000",
            hypervisor: true,
            ..c
        },
        8,
        |i| i,
    );
    let s = t.assumed();
    assert_eq!(s.assumption.label, "8 vCPUs × 0.74–3.5 W, VM (CCF AWS average)");
}

#[test]
fn cgroup_v2_quota_rounds_up_and_max_means_no_limit() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 64, |_| 0)
        .write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
        .write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n");
    let s = t.assumed();
    assert_eq!(s.assumption.cpus, 2);
    assert_eq!(
        s.assumption.label,
        "2 vCPUs × 0.45–2.02 W, VM (CCF AMD EPYC 3rd Gen)"
    );
    assert!(
        s.describe().contains("cgroup cpu.max '150000 100000'"),
        "{}",
        s.describe()
    );

    t.write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    assert_eq!(t.assumed().assumption.cpus, 64, "max: no limit");

    // A tighter quota on an ancestor wins.
    t.write("sys/fs/cgroup/kubepods/cpu.max", "100000 100000\n");
    assert_eq!(t.assumed().assumption.cpus, 1);
}

#[test]
fn cgroup_v1_cfs_quota_and_container_without_cgroup_namespace() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 16, |_| 0)
        .write(
            "proc/self/cgroup",
            "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
        )
        // Inside the container the host path does not exist: its own cgroup is the mount root.
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "250000\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    assert_eq!(t.assumed().assumption.cpus, 3);
    t.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    assert_eq!(t.assumed().assumption.cpus, 16, "-1: no limit");
}

#[test]
fn a_quota_on_bare_metal_shares_the_packages() {
    let t = Tree::new();
    let c = Cpu {
        name: "AMD EPYC 7763 64-Core Processor",
        vendor: "AuthenticAMD",
        family: 25,
        model: 1,
        hypervisor: false,
    };
    t.cpus(&c, 256, |i| i / 128)
        .write("proc/self/cgroup", "0::/a\n")
        .write("sys/fs/cgroup/a/cpu.max", "400000 100000\n");
    let s = t.assumed();
    assert!(
        close(s.estimate.tdp_w, 2.0 * 280.0 * 4.0 / 256.0),
        "{}",
        s.estimate.tdp_w
    );
    assert_eq!(s.assumption.label, "4/256 CPUs of 2 × 280 W TDP (CodeCarbon)");
}

#[test]
fn affinity_limits_the_count() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 16, |_| 0).write(
        "proc/self/status",
        "Name:\tkwtop\nCpus_allowed:\tf\nCpus_allowed_list:\t0-3\n",
    );
    assert_eq!(t.assumed().assumption.cpus, 4);
}

#[test]
fn config_tdp_overrides_everything() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 2, |_| 0).dmi("Amazon EC2", "m6a.large");
    let cfg = EstimateConfig {
        tdp_w: Some(50.0),
        idle_fraction: 0.2,
        model: EstimateModel::Linear,
    };
    let mut s = t.source(&cfg);
    assert!(close(s.estimate.tdp_w, 50.0));
    assert!(close(s.estimate.idle_fraction, 0.2));
    assert_eq!(s.assumption.label, "50 W TDP from config");
    assert_eq!(reading(&mut s).name, "AMD EPYC, ~ 50 W TDP from config");
}

#[test]
fn bare_metal_unknown_model_uses_the_default_per_socket() {
    let t = Tree::new();
    let c = Cpu {
        name: "Mystery 9000",
        vendor: "GenuineIntel",
        family: 6,
        model: 0xee,
        hypervisor: false,
    };
    t.cpus(&c, 4, |i| i / 2);
    let s = t.assumed();
    assert!(close(s.estimate.tdp_w, 2.0 * DEFAULT_TDP_W));
    assert_eq!(s.assumption.label, "default 2 × 85 W TDP, model not in table");
    assert!(s.describe().contains("not in the TDP table"), "{}", s.describe());
}

#[test]
fn the_notice_says_how_to_measure_and_how_to_override() {
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 2, |_| 0);
    let d = t.assumed().describe();
    assert!(
        d.starts_with("P = 4.04 W × (0.22 + 0.78·load), assumed 2 vCPUs"),
        "{d}"
    );
    assert!(d.contains("RAPL") && d.contains("udev"), "{d}");
    assert!(d.contains("[cpu] tdp_w") && d.contains("idle_fraction"), "{d}");
    assert!(d.contains("2 logical CPU(s) usable: online 2"), "{d}");
}

#[test]
fn missing_files_are_not_fatal_and_unreadable_ones_are_named() {
    let s = EstimateSource::new(
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    assert!(s.describe().contains("cpuinfo unreadable"), "{}", s.describe());
    assert!(close(s.estimate.tdp_w, DEFAULT_TDP_W));
    // A cgroup file that cannot be parsed is named, and does not limit the count.
    let t = Tree::new();
    t.cpus(&EPYC_MASKED, 2, |_| 0)
        .write("proc/self/cgroup", "0::/a\n")
        .write("sys/fs/cgroup/a/cpu.max", "lots\n");
    let s = t.assumed();
    assert_eq!(s.assumption.cpus, 2);
    assert!(s.describe().contains("cannot parse 'lots'"), "{}", s.describe());
}
