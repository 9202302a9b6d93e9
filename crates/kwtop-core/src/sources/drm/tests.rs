#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::sysfs::{self, Vendor};
use super::*;
use crate::attribution::{AttributionConfig, Attributor};
use crate::sample::Sample;

pub(super) use crate::testing::drm as fx;

use fx::{Card as FxCard, add_card, amd_discrete, amdgpu_fdinfo, drm_fd, hwmon_dir, put};

const PDEV: &str = "0000:03:00.0";

fn amd_power_only(sys: &Path) {
    add_card(
        sys,
        &FxCard {
            card: 1,
            pdev: "0000:0a:00.0",
            vendor: "0x1002",
            device_id: "0x73bf",
            driver: "amdgpu",
            hwmons: vec![(
                5,
                "amdgpu",
                vec![
                    ("power1_average", "123456789".into()),
                    ("power1_cap", "255000000".into()),
                    ("temp1_input", "48000".into()),
                ],
            )],
            dev_files: vec![("gpu_busy_percent", "3".into())],
        },
    );
}

/// A Ryzen APU's iGPU: no energy counter, SoC power, and the northbridge voltage (APUs only).
fn amd_apu(sys: &Path) {
    add_card(
        sys,
        &FxCard {
            card: 0,
            pdev: "0000:c1:00.0",
            vendor: "0x1002",
            device_id: "0x15bf",
            driver: "amdgpu",
            hwmons: vec![(
                4,
                "amdgpu",
                vec![
                    ("power1_input", "15200000".into()),
                    ("in0_input", "1100".into()),
                    ("in0_label", "vddgfx".into()),
                    ("in1_input", "900".into()),
                    ("in1_label", "vddnb".into()),
                    ("temp1_input", "52000".into()),
                ],
            )],
            dev_files: vec![
                ("gpu_busy_percent", "12".into()),
                ("mem_info_vram_total", (512u64 << 20).to_string()),
                ("mem_info_vram_used", (100u64 << 20).to_string()),
            ],
        },
    );
}

/// An Arc A770 (i915): the device hwmon `i915` and a per-tile `i915_gt0` counting the same energy.
fn intel_i915(sys: &Path) {
    add_card(
        sys,
        &FxCard {
            card: 0,
            pdev: "0000:03:00.0",
            vendor: "0x8086",
            device_id: "0x56a0",
            driver: "i915",
            hwmons: vec![
                (
                    2,
                    "i915",
                    vec![
                        ("energy1_input", "5000000".into()),
                        ("power1_max", "190000000".into()),
                        ("in0_input", "700".into()),
                    ],
                ),
                (3, "i915_gt0", vec![("energy1_input", "4000000".into())]),
            ],
            dev_files: vec![],
        },
    );
}

/// A Battlemage card (xe): energy1 is the card, energy2 the package.
fn intel_xe(sys: &Path) {
    add_card(
        sys,
        &FxCard {
            card: 2,
            pdev: "0000:04:00.0",
            vendor: "0x8086",
            device_id: "0xe20b",
            driver: "xe",
            hwmons: vec![(
                6,
                "xe",
                vec![
                    ("energy1_input", "7000000".into()),
                    ("energy1_label", "card".into()),
                    ("energy2_input", "6000000".into()),
                    ("energy2_label", "pkg".into()),
                    ("power1_max", "150000000".into()),
                    ("power1_label", "card".into()),
                    ("temp2_input", "45000".into()),
                ],
            )],
            dev_files: vec![],
        },
    );
}

fn nvidia(sys: &Path) {
    add_card(
        sys,
        &FxCard {
            card: 3,
            pdev: "0000:41:00.0",
            vendor: "0x10de",
            device_id: "0x2330",
            driver: "nvidia",
            hwmons: vec![],
            dev_files: vec![],
        },
    );
}

fn open(sys: &Path, proc: &Path, first: usize) -> DrmSource {
    std::fs::create_dir_all(proc).unwrap();
    DrmSource::open(sys, proc, first, true).expect("cards")
}

#[test]
fn discovery_follows_the_kernel_links_and_skips_connectors_render_nodes_and_nvidia() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    amd_discrete(&sys, 0, PDEV, 3, 1_000_000);
    amd_power_only(&sys);
    nvidia(&sys);
    let d = sysfs::discover(&sys);
    assert_eq!(d.nvidia, 1);
    let got: Vec<(u32, &str, Vendor, &str, bool)> = d
        .cards
        .iter()
        .map(|c| (c.index, c.pdev.as_str(), c.vendor, c.driver.as_str(), c.apu))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, PDEV, Vendor::Amd, "amdgpu", false),
            (1, "0000:0a:00.0", Vendor::Amd, "amdgpu", false)
        ]
    );
    assert_eq!(d.cards[0].name, "AMD GPU 0x744c (amdgpu)");
    assert!(d.cards[0].hwmon.as_ref().unwrap().ends_with("hwmon/hwmon3"));
}

#[test]
fn amdgpu_discrete_card_with_an_energy_counter() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    amd_discrete(&sys, 0, PDEV, 3, 1_000_000);
    // Two NVML GPUs come first: this card is gpu2.
    let mut s = open(&sys, &t.path().join("proc"), 2);
    let r = s.read_at(0.0);
    assert_eq!(r.len(), 1);
    let g = &r[0];
    assert_eq!((g.id.as_str(), g.kind), ("gpu2", DeviceKind::Gpu));
    assert_eq!(
        (g.vendor.as_deref(), g.source.as_deref()),
        (Some("AMD"), Some("hwmon energy"))
    );
    assert_eq!(g.energy.map(|e| e.value_uj), Some(1_000_000));
    assert_eq!(g.power_w, Some(250.0));
    assert_eq!(g.power_limit_w, Some(300.0));
    assert_eq!(g.temperature_c, Some(61.0));
    assert_eq!(g.util_pct, Some(87.0));
    assert_eq!(
        (g.mem_used_bytes, g.mem_total_bytes),
        (Some(6 << 30), Some(24 << 30))
    );
    assert_eq!(g.error, None);
    put(&hwmon_dir(&sys, PDEV, 3).join("energy1_input"), "3500000\n");
    assert_eq!(
        s.read_counters(),
        vec![(
            "gpu2".to_string(),
            Ok(EnergyCounter {
                value_uj: 3_500_000,
                wrap_uj: None
            })
        )]
    );
    assert_eq!(
        s.describe(),
        vec![format!("gpu2: AMD GPU 0x744c (amdgpu) at {PDEV} (card0, amdgpu)")]
    );
    // An unreadable counter is N/A with the reason, never a zero.
    put(&hwmon_dir(&sys, PDEV, 3).join("energy1_input"), "garbage\n");
    let g = &s.read_at(1.0)[0];
    assert_eq!(g.energy, None);
    assert!(
        g.error.as_deref().unwrap().contains("not a number"),
        "{:?}",
        g.error
    );
}

#[test]
fn amdgpu_card_with_only_power_is_integrated_and_said_once() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    amd_power_only(&sys);
    let mut s = open(&sys, &t.path().join("proc"), 0);
    let g = &s.read_at(0.0)[0];
    assert_eq!(g.id, "gpu0");
    assert_eq!(g.source.as_deref(), Some("hwmon power"));
    assert_eq!(g.energy, None);
    assert!((g.power_w.unwrap() - 123.456789).abs() < 1e-9);
    assert_eq!(g.power_limit_w, Some(255.0));
    assert!(s.read_counters().is_empty(), "no counter to poll");
    let n = s.take_notices();
    assert!(
        n.len() == 1 && n[0].contains("integrated from hwmon power"),
        "{n:?}"
    );
    assert!(s.take_notices().is_empty());
}

#[test]
fn apu_energy_is_left_to_the_cpu_package_never_counted_twice() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    amd_apu(&sys);
    let mut s = open(&sys, &t.path().join("proc"), 0);
    let g = &s.read_at(0.0)[0];
    assert_eq!(g.name, "AMD APU 0x15bf (amdgpu)");
    assert_eq!(
        (g.energy, g.power_w),
        (None, None),
        "the SoC power is not booked here"
    );
    assert_eq!(g.error.as_deref(), Some(APU_NOTE));
    assert_eq!(g.source.as_deref(), Some("in CPU package"));
    // Still shown: utilisation, memory, temperature.
    assert_eq!(
        (g.util_pct, g.mem_total_bytes, g.temperature_c),
        (Some(12.0), Some(512 << 20), Some(52.0))
    );
    assert!(s.read_counters().is_empty());
    assert!(s.take_notices().iter().any(|n| n.contains("APU")));
    // Attribution books nothing for it: no joule of the SoC lands on the GPU.
    let a = sample(0.0, s.read_at(0.0));
    let b = sample(1.0, s.read_at(1.0));
    let i = Attributor::new(AttributionConfig::default()).attribute(&a, &b);
    assert_eq!(i.devices[0].energy_j, None);
}

#[test]
fn i915_reads_the_device_hwmon_not_the_per_tile_duplicate() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    intel_i915(&sys);
    let mut s = open(&sys, &t.path().join("proc"), 0);
    let g = &s.read_at(0.0)[0];
    assert_eq!(
        (g.vendor.as_deref(), g.source.as_deref()),
        (Some("Intel"), Some("hwmon energy"))
    );
    assert_eq!(g.name, "Intel GPU 0x56a0 (i915)");
    assert_eq!(g.energy.map(|e| e.value_uj), Some(5_000_000));
    assert_eq!(g.power_limit_w, Some(190.0));
}

#[test]
fn xe_takes_the_card_channel() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    intel_xe(&sys);
    let mut s = open(&sys, &t.path().join("proc"), 0);
    let g = &s.read_at(0.0)[0];
    assert_eq!(g.name, "Intel GPU 0xe20b (xe)");
    assert_eq!(g.energy.map(|e| e.value_uj), Some(7_000_000));
    assert_eq!((g.power_limit_w, g.temperature_c), (Some(150.0), Some(45.0)));
}

#[test]
fn intel_integrated_gpu_without_hwmon_is_na_with_the_reason() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    add_card(
        &sys,
        &FxCard {
            card: 0,
            pdev: "0000:00:02.0",
            vendor: "0x8086",
            device_id: "0x9a49",
            driver: "i915",
            hwmons: vec![],
            dev_files: vec![],
        },
    );
    let mut s = open(&sys, &t.path().join("proc"), 0);
    let g = &s.read_at(0.0)[0];
    assert_eq!(g.energy, None);
    assert!(
        g.error.as_deref().unwrap().contains("CPU package"),
        "{:?}",
        g.error
    );
}

#[test]
fn no_card_means_no_source_and_no_fd_scan() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    std::fs::create_dir_all(sys.join("class/drm")).unwrap();
    assert!(DrmSource::open(&sys, &t.path().join("proc"), 0, true).is_none());
    nvidia(&sys);
    assert!(
        DrmSource::open(&sys, &t.path().join("proc"), 0, true).is_none(),
        "NVIDIA is NVML's"
    );
    let d = DrmSource::open(&sys, &t.path().join("proc"), 0, false).expect("a notice to give");
    assert_eq!(d.card_count(), 0);
}

fn sample(t: f64, devices: Vec<DeviceReading>) -> Sample {
    Sample {
        mono_s: t,
        wall_ms: (t * 1000.0) as i64,
        uptime_s: None,
        ticks_per_s: 100,
        cpu_times: None,
        processes: Vec::new(),
        devices,
    }
}

#[test]
fn attribution_of_a_drm_card_conserves_energy_and_follows_engine_time() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    let proc = t.path().join("proc");
    amd_discrete(&sys, 0, PDEV, 3, 0);
    drm_fd(
        &proc,
        700,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 1, 0, 0, 4 << 20),
    );
    drm_fd(
        &proc,
        701,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 2, 0, 0, 12 << 20),
    );
    let mut s = open(&sys, &proc, 0);
    let a = sample(0.0, s.read_at(0.0));
    // 2 s at 250 W = 500 J; 700 kept gfx busy 1.5 s, 701 0.5 s.
    put(&hwmon_dir(&sys, PDEV, 3).join("energy1_input"), "500000000\n");
    drm_fd(
        &proc,
        700,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 1, 1_500_000_000, 0, 4 << 20),
    );
    drm_fd(
        &proc,
        701,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 2, 500_000_000, 0, 12 << 20),
    );
    let b = sample(2.0, s.read_at(2.0));
    let holders = &b.devices[0].gpu_processes;
    assert_eq!(
        holders.iter().map(|p| p.sm_util_pct).collect::<Vec<_>>(),
        vec![Some(75.0), Some(25.0)]
    );
    let i = Attributor::new(AttributionConfig::default()).attribute(&a, &b);
    let d = &i.devices[0];
    assert_eq!(d.energy_j, Some(500.0));
    assert!(d.conservation_error_j().abs() < 1e-9, "{d:?}");
    let j = |pid| {
        d.shares
            .iter()
            .filter(|(k, _)| k.pid == pid)
            .map(|(_, j)| j)
            .sum::<f64>()
    };
    // Static part (10 % of the 300 W cap × 2 s = 60 J) by memory 1:3, the rest by engine time 3:1.
    let (s700, s701) = (60.0 / 4.0 + 440.0 * 0.75, 60.0 * 0.75 + 440.0 * 0.25);
    assert!(
        (j(700) - s700).abs() < 1e-6 && (j(701) - s701).abs() < 1e-6,
        "{} {}",
        j(700),
        j(701)
    );
}

#[test]
fn i915_client_without_pdev_goes_to_the_only_i915_card() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    let proc = t.path().join("proc");
    intel_i915(&sys);
    amd_discrete(&sys, 1, "0000:0b:00.0", 7, 0);
    // Kernels before drm-pdev: the driver alone names the card when it drives one.
    let info = |ns: u64| {
        format!(
            "drm-driver:\ti915\ndrm-client-id:\t3\ndrm-engine-render:\t{ns} ns\ndrm-total-local0:\t8 MiB\n"
        )
    };
    drm_fd(&proc, 800, 4, "/dev/dri/renderD128", &info(0));
    let mut s = open(&sys, &proc, 0);
    s.read_at(0.0);
    drm_fd(&proc, 800, 4, "/dev/dri/renderD128", &info(250_000_000));
    let r = s.read_at(0.5);
    assert_eq!(
        (r[0].name.as_str(), r[1].gpu_processes.len()),
        ("Intel GPU 0x56a0 (i915)", 0)
    );
    assert_eq!(
        r[0].gpu_processes,
        vec![GpuProcess {
            pid: 800,
            used_mem_bytes: Some(8 << 20),
            sm_util_pct: Some(50.0),
            mig: None
        }]
    );
    assert_eq!(s.fdinfo_reads(), 1);
}
