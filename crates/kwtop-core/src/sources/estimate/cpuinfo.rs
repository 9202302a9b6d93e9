//! `/proc/cpuinfo` as the estimate needs it: model name, vendor, family/model numbers, the
//! `hypervisor` flag and the package layout.

use std::collections::BTreeSet;

/// What `/proc/cpuinfo` says about the CPUs (first processor's identity, all processors' layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuInfo {
    /// `model name` (x86); `None` on architectures without one (arm64) or an empty file.
    pub model_name: Option<String>,
    /// `vendor_id` (`GenuineIntel`, `AuthenticAMD`), or `CPU implementer` on arm64 (`0x41`).
    pub vendor: Option<String>,
    /// `cpu family` (x86) in decimal, as the kernel prints it.
    pub family: Option<u32>,
    /// `model` (x86) in decimal.
    pub model: Option<u32>,
    pub stepping: Option<u32>,
    /// `CPU part` on arm64 (`0xd0c` = Neoverse N1).
    pub part: Option<u32>,
    /// Number of `processor` entries.
    pub logical: usize,
    /// Distinct `physical id`s (at least 1).
    pub sockets: usize,
    /// The `hypervisor` flag (set by the kernel when running under a hypervisor).
    pub hypervisor: bool,
}

impl CpuInfo {
    /// Several sockets with one logical CPU each: how many hypervisors present vCPUs. Real multi-socket
    /// servers have had several cores per package for two decades, so the socket count is not a count
    /// of physical packages here.
    pub fn one_cpu_per_socket(&self) -> bool {
        self.sockets > 1 && self.logical == self.sockets
    }
}

fn num(v: &str) -> Option<u32> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Parse a `/proc/cpuinfo` text. Unknown or malformed lines are ignored.
pub fn parse(text: &str) -> CpuInfo {
    let mut c = CpuInfo::default();
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    let mut first = true;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                // A second `processor` line starts the next CPU: identity comes from the first.
                first = c.logical == 0;
                c.logical += 1;
            }
            "physical id" if ids.len() < 4096 => {
                ids.insert(v);
            }
            "flags" | "Features" => {
                c.hypervisor |= v.split_whitespace().any(|f| f == "hypervisor");
            }
            _ if !first => {}
            "model name" if c.model_name.is_none() && !v.is_empty() => c.model_name = Some(v.to_string()),
            "vendor_id" | "CPU implementer" if c.vendor.is_none() => c.vendor = Some(v.to_string()),
            "cpu family" => c.family = c.family.or(num(v)),
            "model" => c.model = c.model.or(num(v)),
            "stepping" => c.stepping = c.stepping.or(num(v)),
            "CPU part" => c.part = c.part.or(num(v)),
            _ => {}
        }
    }
    c.sockets = ids.len().max(1);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kind_of_vm() {
        // The shape of a 2-vCPU cloud VM with a masked model name.
        let cpu = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
                   model name\t: AMD EPYC\nstepping\t: 1\nphysical id\t: 0\nsiblings\t: 2\n\
                   flags\t\t: fpu vme hypervisor lahf_lm\n\n";
        let c = parse(&format!(
            "{cpu}{}",
            cpu.replace("processor\t: 0", "processor\t: 1")
        ));
        assert_eq!(c.model_name.as_deref(), Some("AMD EPYC"));
        assert_eq!(c.vendor.as_deref(), Some("AuthenticAMD"));
        assert_eq!((c.family, c.model, c.stepping), (Some(25), Some(1), Some(1)));
        assert_eq!((c.logical, c.sockets), (2, 1));
        assert!(c.hypervisor);
        assert!(!c.one_cpu_per_socket());
    }

    #[test]
    fn each_vcpu_its_own_socket() {
        let text: String = (0..8)
            .map(|i| {
                format!("processor\t: {i}\nmodel name\t: Intel Xeon\nphysical id\t: {i}\ncpu cores\t: 1\n\n")
            })
            .collect();
        let c = parse(&text);
        assert_eq!((c.logical, c.sockets), (8, 8));
        assert!(c.one_cpu_per_socket());
        assert!(!c.hypervisor, "no flag: the layout alone tells");
    }

    #[test]
    fn arm64_implementer_and_part() {
        let c = parse("processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n");
        assert_eq!(c.vendor.as_deref(), Some("0x41"));
        assert_eq!(c.part, Some(0xd0c));
        assert_eq!(c.model_name, None);
        assert!(!c.hypervisor);
    }

    #[test]
    fn garbage_and_empty_input() {
        assert_eq!(parse("").logical, 0);
        assert_eq!(parse("").sockets, 1);
        let c = parse("model\t: lots\ncpu family : \u{0}\n:::\n");
        assert_eq!((c.family, c.model), (None, None));
    }
}
