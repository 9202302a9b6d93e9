//! Which Cloud Carbon Footprint microarchitecture row a CPU belongs to, from what can be cited:
//!
//! 1. the package's codename in the threads table (quattor, vendor data);
//! 2. the model name: Intel's numbering (Xeon Scalable: the second digit is the generation, 1 =
//!    Skylake, 2 = Cascade Lake; Xeon E3/E5 v2/v3/v4/v5 = Ivy Bridge/Haswell/Broadwell/Skylake, no
//!    suffix = Sandy Bridge; Xeon E-21xx/E-22xx = Coffee Lake), AMD's (EPYC 7xxN: the last digit is
//!    the generation), and QEMU's named CPU models ("Intel Xeon Processor (Cascadelake)",
//!    "AMD EPYC-Milan Processor"). A test checks these rules against every codename in the table;
//! 3. a masked name ("AMD EPYC"): vendor + family + model numbers, where Linux maps them to one
//!    generation (`arch/x86/kernel/cpu/amd.c` Zen generations; `arch/x86/include/asm/intel-family.h`);
//! 4. arm64 Neoverse N1 (`CPU part` 0xd0c, `arch/arm64/include/asm/cputype.h`) on Amazon EC2 =
//!    Graviton2.
//!
//! `None` when nothing is unambiguous; the caller then uses the dataset's average.

use super::cpuinfo::CpuInfo;
use super::platform::Provider;
use super::tables::{Package, normalize};

pub const SANDY: &str = "Sandy Bridge";
pub const IVY: &str = "Ivy Bridge";
pub const HASWELL: &str = "Haswell";
pub const BROADWELL: &str = "Broadwell";
pub const SKYLAKE: &str = "Skylake";
pub const CASCADE: &str = "Cascade Lake";
pub const COFFEE: &str = "Coffee Lake";
pub const EPYC1: &str = "AMD EPYC 1st Gen";
pub const EPYC2: &str = "AMD EPYC 2nd Gen";
pub const EPYC3: &str = "AMD EPYC 3rd Gen";
pub const GRAVITON2: &str = "AWS Graviton2";

/// The CCF row and how it was found.
pub fn find(
    cpu: &CpuInfo,
    package: Option<&Package>,
    provider: Option<Provider>,
) -> Option<(&'static str, String)> {
    let name = cpu.model_name.as_deref().unwrap_or("");
    if let Some(p) = package
        && let Some(a) = from_codename(&p.codename, &p.name)
    {
        return Some((a, format!("codename '{}' of {} (quattor)", p.codename, p.name)));
    }
    if let Some(a) = from_name(name) {
        return Some((a, "from the model name".into()));
    }
    if let Some(a) = from_family(cpu) {
        return Some((
            a,
            format!(
                "from {} family {} model {} (Linux CPU family tables)",
                cpu.vendor.as_deref().unwrap_or("?"),
                cpu.family.unwrap_or(0),
                cpu.model.unwrap_or(0)
            ),
        ));
    }
    if cpu.vendor.as_deref() == Some("0x41") && cpu.part == Some(0xd0c) && provider == Some(Provider::Aws) {
        return Some((GRAVITON2, "Neoverse N1 on Amazon EC2".into()));
    }
    None
}

fn epyc(name: &str) -> bool {
    name.to_ascii_lowercase().contains("epyc")
}

/// A codename from the threads table.
pub fn from_codename(codename: &str, model_name: &str) -> Option<&'static str> {
    let c = codename.trim();
    Some(match c {
        _ if c.starts_with("sandy bridge") => SANDY,
        _ if c.starts_with("ivy bridge") => IVY,
        "haswell" => HASWELL,
        "broadwell" => BROADWELL,
        "skylake" => SKYLAKE,
        "cascade lake" => CASCADE,
        "coffee lake" => COFFEE,
        "zen" if epyc(model_name) => EPYC1,
        "zen2" if epyc(model_name) => EPYC2,
        "zen3" if epyc(model_name) => EPYC3,
        _ => return None,
    })
}

/// Vendor numbering and QEMU model names.
pub fn from_name(model_name: &str) -> Option<&'static str> {
    let n = normalize(model_name);
    for (qemu, a) in [
        ("(sandybridge", SANDY),
        ("(ivybridge", IVY),
        ("(haswell", HASWELL),
        ("(broadwell", BROADWELL),
        ("(skylake", SKYLAKE),
        ("(cascadelake", CASCADE),
        ("epyc-rome", EPYC2),
        ("epyc-milan", EPYC3),
    ] {
        if n.contains(qemu) {
            return Some(a);
        }
    }
    let words: Vec<&str> = n.split_whitespace().collect();
    if n.contains("xeon") {
        for (i, w) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or("");
            if matches!(*w, "platinum" | "gold" | "silver" | "bronze") {
                let d: Vec<char> = next.chars().take(4).collect();
                if d.len() == 4 && d.iter().all(char::is_ascii_digit) {
                    return match d[1] {
                        '1' => Some(SKYLAKE),
                        '2' => Some(CASCADE),
                        _ => None,
                    };
                }
            }
            if let Some(num) = w.strip_prefix("e5-").or_else(|| w.strip_prefix("e3-")) {
                let (num, glued) = num.split_once('v').unwrap_or((num, ""));
                if num.len() < 4 || !num.chars().take(4).all(|c| c.is_ascii_digit()) {
                    continue;
                }
                let version = if glued.is_empty() {
                    next.strip_prefix('v').unwrap_or("")
                } else {
                    glued
                };
                return match version {
                    "" => Some(SANDY),
                    "2" => Some(IVY),
                    "3" => Some(HASWELL),
                    "4" => Some(BROADWELL),
                    "5" if w.starts_with("e3-") => Some(SKYLAKE),
                    _ => None,
                };
            }
            if w.starts_with("e-21") || w.starts_with("e-22") {
                return Some(COFFEE);
            }
        }
    }
    if n.contains("epyc") {
        for w in &words {
            let c: Vec<char> = w.chars().collect();
            if c.len() == 4 && c[0] == '7' && c.iter().all(char::is_ascii_alphanumeric) {
                return match c[3] {
                    '1' => Some(EPYC1),
                    '2' => Some(EPYC2),
                    '3' => Some(EPYC3),
                    _ => None,
                };
            }
        }
    }
    None
}

/// Vendor + family + model (+ stepping), where Linux's tables give one generation.
pub fn from_family(cpu: &CpuInfo) -> Option<&'static str> {
    let (family, model) = (cpu.family?, cpu.model?);
    match cpu.vendor.as_deref()? {
        // arch/x86/kernel/cpu/amd.c, bsp_init_amd(): the Zen generations. Only EPYC names: the
        // coefficients are for server parts.
        "AuthenticAMD" if epyc(cpu.model_name.as_deref().unwrap_or("")) => match (family, model) {
            (0x17, 0x00..=0x2f | 0x50..=0x5f) => Some(EPYC1),
            (0x17, 0x30..=0x4f | 0x60..=0x7f | 0x90..=0x91 | 0xa0..=0xaf) => Some(EPYC2),
            (0x19, 0x00..=0x0f | 0x20..=0x5f) => Some(EPYC3),
            _ => None,
        },
        // arch/x86/include/asm/intel-family.h.
        "GenuineIntel" if family == 6 => match model {
            0x2a | 0x2d => Some(SANDY),
            0x3a | 0x3e => Some(IVY),
            0x3c | 0x3f | 0x45 | 0x46 => Some(HASWELL),
            0x3d | 0x47 | 0x4f | 0x56 => Some(BROADWELL),
            0x4e | 0x5e => Some(SKYLAKE),
            // 0x55 is Skylake-SP, Cascade Lake (stepping 7) and Cooper Lake (stepping 11).
            0x55 if cpu.stepping == Some(7) => Some(CASCADE),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::{packages, vcpu_watts};
    use super::*;

    #[test]
    fn every_answer_has_coefficients() {
        for a in [
            SANDY, IVY, HASWELL, BROADWELL, SKYLAKE, CASCADE, COFFEE, EPYC1, EPYC2, EPYC3, GRAVITON2,
        ] {
            assert!(vcpu_watts(a).is_some(), "{a}");
        }
    }

    #[test]
    fn names_clouds_show() {
        for (name, want) in [
            ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", Some(CASCADE)),
            ("Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz", Some(SKYLAKE)),
            ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", None),
            ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", Some(BROADWELL)),
            ("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz", Some(HASWELL)),
            ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", Some(SANDY)),
            ("Intel(R) Xeon(R) CPU E7-8880 v3 @ 2.30GHz", None),
            ("Intel(R) Xeon(R) E-2176G CPU @ 3.70GHz", Some(COFFEE)),
            ("AMD EPYC 7571", Some(EPYC1)),
            ("AMD EPYC 7R32", Some(EPYC2)),
            ("AMD EPYC 7B13", Some(EPYC3)),
            ("AMD EPYC 9R14", None),
            ("AMD EPYC", None),
            ("Intel Xeon Processor (Cascadelake)", Some(CASCADE)),
            ("Intel Xeon Processor (Skylake, IBRS)", Some(SKYLAKE)),
            ("AMD EPYC-Milan Processor", Some(EPYC3)),
            ("QEMU Virtual CPU version 2.5+", None),
        ] {
            assert_eq!(from_name(name), want, "{name}");
        }
    }

    #[test]
    fn name_rules_agree_with_every_codename_in_the_table() {
        let mut agree = 0;
        for p in packages().into_iter().filter(|p| !p.codename.is_empty()) {
            let Some(by_name) = from_name(&p.name) else {
                continue;
            };
            let by_code = from_codename(&p.codename, &p.name);
            assert_eq!(
                by_code,
                Some(by_name),
                "{} is '{}' in the table, the name rule says {by_name}",
                p.name,
                p.codename
            );
            agree += 1;
        }
        assert!(agree > 150, "the rules must cover the table ({agree})");
    }

    fn cpu(vendor: &str, name: &str, family: u32, model: u32, stepping: u32) -> CpuInfo {
        CpuInfo {
            model_name: Some(name.into()),
            vendor: Some(vendor.into()),
            family: Some(family),
            model: Some(model),
            stepping: Some(stepping),
            ..CpuInfo::default()
        }
    }

    #[test]
    fn masked_names_by_family_and_model() {
        assert_eq!(
            from_family(&cpu("AuthenticAMD", "AMD EPYC", 25, 1, 1)),
            Some(EPYC3)
        );
        assert_eq!(
            from_family(&cpu("AuthenticAMD", "AMD EPYC", 23, 49, 0)),
            Some(EPYC2)
        );
        assert_eq!(
            from_family(&cpu("AuthenticAMD", "AMD EPYC", 23, 1, 2)),
            Some(EPYC1)
        );
        assert_eq!(
            from_family(&cpu("AuthenticAMD", "AMD EPYC", 25, 17, 1)),
            None,
            "Zen 4"
        );
        assert_eq!(
            from_family(&cpu("AuthenticAMD", "AMD Ryzen", 25, 33, 0)),
            None,
            "not a server part"
        );
        assert_eq!(
            from_family(&cpu("GenuineIntel", "Intel Xeon", 6, 0x4f, 1)),
            Some(BROADWELL)
        );
        assert_eq!(
            from_family(&cpu("GenuineIntel", "Intel Xeon", 6, 0x55, 7)),
            Some(CASCADE)
        );
        assert_eq!(
            from_family(&cpu("GenuineIntel", "Intel Xeon", 6, 0x55, 4)),
            None,
            "ambiguous"
        );
    }

    #[test]
    fn graviton2_only_on_ec2() {
        let mut c = CpuInfo {
            vendor: Some("0x41".into()),
            part: Some(0xd0c),
            ..CpuInfo::default()
        };
        assert_eq!(find(&c, None, Some(Provider::Aws)).map(|x| x.0), Some(GRAVITON2));
        assert_eq!(find(&c, None, None), None);
        c.part = Some(0xd40);
        assert_eq!(find(&c, None, Some(Provider::Aws)), None);
    }
}
