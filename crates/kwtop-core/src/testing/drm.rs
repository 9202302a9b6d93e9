//! sysfs and /proc fixture trees for DRM GPUs, laid out exactly as the kernel lays them out,
//! relative symlinks included:
//!
//! ```text
//! class/drm/card0        -> ../../devices/pci0000:00/0000:00:01.0/0000:03:00.0/drm/card0
//! …/drm/card0/device     -> ../../../0000:03:00.0
//! …/0000:03:00.0/driver  -> ../../../../bus/pci/drivers/amdgpu
//! …/0000:03:00.0/hwmon/hwmon3/{name,energy1_input,…}
//! class/hwmon/hwmon3     -> ../../devices/pci0000:00/0000:00:01.0/0000:03:00.0/hwmon/hwmon3
//! class/drm/card0-DP-1, class/drm/renderD128   (connector and render node: not cards)
//! proc/PID/fd/N          -> /dev/dri/renderD128, proc/PID/fdinfo/N
//! ```
//!
//! Shared by the unit tests and the integration tests (`kwtop_core::testing::drm`); std only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// One hwmon directory: its number, its `name` and the files in it.
pub type Hwmon<'a> = (u32, &'a str, Vec<(&'a str, String)>);

/// One PCI GPU to lay out.
pub struct Card<'a> {
    pub card: u32,
    pub pdev: &'a str,
    pub vendor: &'a str,
    pub device_id: &'a str,
    pub driver: &'a str,
    /// (hwmon number, hwmon `name`, files in it)
    pub hwmons: Vec<Hwmon<'a>>,
    /// Files on the PCI device (`gpu_busy_percent`, `mem_info_vram_total`, …).
    pub dev_files: Vec<(&'a str, String)>,
}

/// Write a file atomically (a reader may be reading it), creating its directory.
pub fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Lay out `c` under `sys`; returns the PCI device directory (real path).
pub fn add_card(sys: &Path, c: &Card) -> PathBuf {
    let bridge = "devices/pci0000:00/0000:00:01.0";
    let dev = sys.join(bridge).join(c.pdev);
    put(&dev.join("vendor"), &format!("{}\n", c.vendor));
    put(&dev.join("device"), &format!("{}\n", c.device_id));
    put(&dev.join("boot_vga"), "0\n");
    for (f, v) in &c.dev_files {
        put(&dev.join(f), &format!("{v}\n"));
    }
    std::fs::create_dir_all(sys.join("bus/pci/drivers").join(c.driver)).unwrap();
    symlink(
        format!("../../../../bus/pci/drivers/{}", c.driver),
        dev.join("driver"),
    )
    .unwrap();
    std::fs::create_dir_all(sys.join("class/drm")).unwrap();
    std::fs::create_dir_all(sys.join("class/hwmon")).unwrap();
    let render = 128 + c.card;
    for node in [
        format!("card{}", c.card),
        format!("card{}-DP-1", c.card),
        format!("renderD{render}"),
    ] {
        let d = dev.join("drm").join(&node);
        std::fs::create_dir_all(&d).unwrap();
        symlink(format!("../../../{}", c.pdev), d.join("device")).unwrap();
        put(
            &d.join("dev"),
            &format!(
                "226:{}\n",
                if node.starts_with("renderD") {
                    render
                } else {
                    c.card
                }
            ),
        );
        symlink(
            format!("../../{bridge}/{}/drm/{node}", c.pdev),
            sys.join("class/drm").join(&node),
        )
        .unwrap();
    }
    for (n, name, files) in &c.hwmons {
        let h = dev.join(format!("hwmon/hwmon{n}"));
        put(&h.join("name"), &format!("{name}\n"));
        for (f, v) in files {
            put(&h.join(f), &format!("{v}\n"));
        }
        symlink(
            format!("../../{bridge}/{}/hwmon/hwmon{n}", c.pdev),
            sys.join(format!("class/hwmon/hwmon{n}")),
        )
        .unwrap();
        symlink(format!("../../../{}", c.pdev), h.join("device")).unwrap();
    }
    dev
}

/// The hwmon directory `hwmon{n}` of the card at `pdev`.
pub fn hwmon_dir(sys: &Path, pdev: &str, n: u32) -> PathBuf {
    sys.join("devices/pci0000:00/0000:00:01.0")
        .join(pdev)
        .join(format!("hwmon/hwmon{n}"))
}

/// A discrete AMD card (Radeon RX 7900 XTX id) with an energy counter.
pub fn amd_discrete(sys: &Path, card: u32, pdev: &str, hwmon: u32, energy_uj: u64) -> PathBuf {
    add_card(
        sys,
        &Card {
            card,
            pdev,
            vendor: "0x1002",
            device_id: "0x744c",
            driver: "amdgpu",
            hwmons: vec![(
                hwmon,
                "amdgpu",
                vec![
                    ("energy1_input", energy_uj.to_string()),
                    ("power1_average", "250000000".into()),
                    ("power1_cap", "300000000".into()),
                    ("temp1_input", "61000".into()),
                    ("temp1_label", "edge".into()),
                    ("in0_input", "950".into()),
                    ("in0_label", "vddgfx".into()),
                ],
            )],
            dev_files: vec![
                ("gpu_busy_percent", "87".into()),
                ("mem_info_vram_total", (24u64 << 30).to_string()),
                ("mem_info_vram_used", (6u64 << 30).to_string()),
            ],
        },
    )
}

/// A DRM fd of `pid`: `fd/N` links to `node` (e.g. `/dev/dri/renderD128`), `fdinfo/N` is `info`.
pub fn drm_fd(proc: &Path, pid: u32, fd: u32, node: &str, info: &str) {
    let d = proc.join(pid.to_string());
    std::fs::create_dir_all(d.join("fd")).unwrap();
    let link = d.join(format!("fd/{fd}"));
    if !link.is_symlink() {
        symlink(node, &link).unwrap();
    }
    put(&d.join(format!("fdinfo/{fd}")), info);
}

/// A non-DRM fd (a pipe, a file): must be skipped without reading its fdinfo.
pub fn other_fd(proc: &Path, pid: u32, fd: u32, target: &str) {
    let d = proc.join(pid.to_string());
    std::fs::create_dir_all(d.join("fd")).unwrap();
    symlink(target, d.join(format!("fd/{fd}"))).unwrap();
    put(
        &d.join(format!("fdinfo/{fd}")),
        "pos:\t0\nflags:\t02\nmnt_id:\t1\n",
    );
}

/// amdgpu fdinfo text as the kernel prints it.
pub fn amdgpu_fdinfo(pdev: &str, client: u64, gfx_ns: u64, compute_ns: u64, vram_kib: u64) -> String {
    format!(
        "pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t1057\ndrm-driver:\tamdgpu\ndrm-client-id:\t{client}\n\
         drm-pdev:\t{pdev}\npasid:\t32771\ndrm-memory-vram:\t{vram_kib} KiB\ndrm-memory-gtt:\t2048 KiB\n\
         drm-memory-cpu:\t0 KiB\namd-memory-visible-vram:\t0 KiB\ndrm-engine-gfx:\t{gfx_ns} ns\n\
         drm-engine-compute:\t{compute_ns} ns\ndrm-engine-dec:\t0 ns\n"
    )
}
