//! Cost of one tick after the sources: attribution of a sample pair + ledger update, at 100, 1,000
//! and 10,000 processes on 2 CPU packages, 2 DRAM domains and 2 GPUs. Target: ≤ 1 ms at 1,000.
//! Also the DRM fdinfo read per tick (issue 14 item 3) on a fixture /proc and sysfs tree, and the
//! process read per tick through the real procfs source on a fixture /proc of 100 and 1,000
//! processes in the kernel's file formats (issue 12; `kwtop_core::testing::procfs`). And drawing one
//! frame of the live screen (120×40) at 300 and 3,000 processes of a synthetic host.
//! Run: `cargo bench --bench tick`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kwtop::attribution::Attributor;
use kwtop::ledger::{IdleHolderConfig, Ledger};
use kwtop::sample::{DeviceKind, Sample};
use kwtop_core::testing;

use kwtop_core::testing::drm as fx;

fn main() {
    divan::main();
}

fn sample(n: usize, t: f64) -> Sample {
    let step = (t * 100.0) as u64;
    let processes = (0..n).map(|i| {
        testing::process(1000 + i as u32, 50 + i as u64, (i as u64 % 7) * step)
            .comm(format!("proc{i}"))
            .cmdline(format!("/usr/bin/proc{i} --flag value"))
            .user("ana")
            .build()
    });
    let mut devices = Vec::new();
    for (id, kind) in [
        ("cpu0", DeviceKind::Cpu),
        ("cpu1", DeviceKind::Cpu),
        ("dram0", DeviceKind::Dram),
        ("dram1", DeviceKind::Dram),
    ] {
        let d = testing::counter(id, kind, id, (t * 150e6) as u64);
        devices.push(testing::wrapping(d, Some(262_143_328_850)));
    }
    for g in 0..2u32 {
        let holders = (0..8)
            .map(|k| testing::holder(1000 + g * 8 + k, 4 << 30, Some(f64::from(k * 10))))
            .collect();
        devices.push(testing::gpu(
            format!("gpu{g}"),
            "NVIDIA H100",
            (t * 600e6) as u64,
            Some(700.0),
            holders,
        ));
    }
    testing::sample_at(t)
        .wall_origin_ms(1_700_000_000_000)
        .uptime_origin(10_000.0)
        .cpu((n as u64) * 4 * step, 64 * step)
        .procs(processes)
        .devices(devices)
        .build()
}

#[divan::bench(args = [100, 1_000, 10_000])]
fn attribution_and_ledger_tick(bencher: divan::Bencher, n: usize) {
    let a = sample(n, 1.0);
    let b = sample(n, 2.0);
    let mut at = Attributor::default();
    let mut ledger = Ledger::new(IdleHolderConfig::default());
    ledger.observe_devices(&a);
    let iv = at.attribute(&a, &b);
    ledger.apply(&b, &iv);
    bencher.bench_local(|| {
        let iv = at.attribute(divan::black_box(&a), divan::black_box(&b));
        ledger.apply(&b, &iv);
    });
}

/// One AMD card and `n` processes: 8 hold a DRM client through two fds, every process has three
/// ordinary fds. Returns the tree (kept alive) and the source after its first read.
fn drm_fixture(n: usize) -> (tempfile::TempDir, kwtop::sources::drm::DrmSource) {
    let dir = tempfile::tempdir().unwrap();
    let (sys, proc) = (dir.path().join("sys"), dir.path().join("proc"));
    fx::amd_discrete(&sys, 0, "0000:03:00.0", 3, 0);
    for i in 0..n as u32 {
        let pid = 1000 + i;
        for fd in 0..3 {
            fx::other_fd(&proc, pid, fd, "/dev/pts/0");
        }
        if i < 8 {
            let info = fx::amdgpu_fdinfo("0000:03:00.0", u64::from(i), 1_000, 0, 1024);
            fx::drm_fd(&proc, pid, 5, "/dev/dri/renderD128", &info);
            fx::drm_fd(&proc, pid, 6, "/dev/dri/card0", &info);
        }
    }
    let mut src = kwtop::sources::drm::DrmSource::open(&sys, &proc, 0, true).unwrap();
    src.read_at(0.0);
    (dir, src)
}

/// A steady tick: list /proc, read the card's sensors and the 16 DRM fds' fdinfo.
#[divan::bench(args = [100, 1_000])]
fn drm_fdinfo_tick(bencher: divan::Bencher, n: usize) {
    let (_dir, mut src) = drm_fixture(n);
    let mut t = 0.0;
    bencher.bench_local(|| {
        t += 1e-6; // stays inside the rescan period
        divan::black_box(src.read_at(t));
    });
}

/// A tick that also re-reads every process's fd links (once per `fdinfo::RESCAN_S`).
#[divan::bench(args = [100, 1_000])]
fn drm_holder_full_scan(bencher: divan::Bencher, n: usize) {
    let (_dir, mut src) = drm_fixture(n);
    let mut t = 0.0;
    bencher.bench_local(|| {
        t += kwtop::sources::drm::fdinfo::RESCAN_S;
        divan::black_box(src.read_at(t));
    });
}

/// A /proc fixture of `n` processes and the procfs source over it. `ProcFs::new` reads nothing.
fn procfs_fixture(n: usize) -> (tempfile::TempDir, kwtop::sources::procfs::ProcFs) {
    let dir = tempfile::tempdir().unwrap();
    testing::procfs::host(dir.path(), n, 0);
    let src = kwtop::sources::procfs::ProcFs::new(dir.path().to_path_buf());
    (dir, src)
}

/// A steady tick of the process source: `/proc/stat`, `/proc/uptime`, the listing of /proc and every
/// `/proc/PID/stat` (each process's facts were read on the first tick and are shared after).
#[divan::bench(args = [100, 1_000])]
fn procfs_tick(bencher: divan::Bencher, n: usize) {
    use kwtop::sources::ProcessSource;
    let (_dir, mut src) = procfs_fixture(n);
    assert_eq!(src.read().processes.len(), n);
    bencher.bench_local(|| divan::black_box(src.read()));
}

/// The first tick of a new source: also every process's `status`, `cmdline` and `cgroup`, and the
/// user names of their uids.
#[divan::bench(args = [1_000])]
fn procfs_first_read(bencher: divan::Bencher, n: usize) {
    use kwtop::sources::ProcessSource;
    let (dir, _) = procfs_fixture(n);
    bencher.bench_local(|| {
        let mut src = kwtop::sources::procfs::ProcFs::new(dir.path().to_path_buf());
        divan::black_box(src.read())
    });
}

/// The live monitor after `seconds` of a synthetic host of `n` processes (a third kernel threads,
/// hidden; a quarter of the rest gain CPU time each second, so nearly all have energy).
fn live_app(n: usize, seconds: usize) -> kwtop::app::App {
    use kwtop::app::{App, AppParams, Msg, ViewOptions};
    use kwtop_core::testing::host::{HostShape, SyntheticHost};
    let mut host = SyntheticHost::new(HostShape {
        procs: n,
        sporadic: n / 4,
        ..HostShape::default()
    });
    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    for _ in 0..seconds {
        app.update(Msg::Sample(Box::new(host.next_sample())));
    }
    app
}

/// One frame of the live screen at 120×40 into a buffer (no terminal output): header, devices,
/// chart (30 s of history), process table, footer.
#[divan::bench(args = [300, 3_000])]
fn draw_frame(bencher: divan::Bencher, n: usize) {
    draw_bench(bencher, &live_app(n, 30));
}

/// The same after 10 minutes: the chart's default window full (600 points a series).
#[divan::bench(args = [300])]
fn draw_frame_10min(bencher: divan::Bencher, n: usize) {
    draw_bench(bencher, &live_app(n, 600));
}

fn draw_bench(bencher: divan::Bencher, app: &kwtop::app::App) {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    let area = Rect::new(0, 0, 120, 40);
    let mut buf = Buffer::empty(area);
    bencher.bench_local(|| {
        buf.reset();
        kwtop::ui::draw(divan::black_box(app), area, &mut buf);
    });
}
