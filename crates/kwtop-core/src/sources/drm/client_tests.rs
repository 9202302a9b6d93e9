//! DRM clients from fdinfo: parsing, holders, one client counted once, held counters, exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::fdinfo::{self, Clients};
use super::tests::fx::{amdgpu_fdinfo, drm_fd, other_fd};

const PDEV: &str = "0000:03:00.0";

#[test]
fn parses_amdgpu_i915_and_xe_fdinfo() {
    let a = fdinfo::parse(&amdgpu_fdinfo(PDEV, 7, 1_000, 20, 4096)).unwrap();
    assert_eq!(
        (a.driver.as_deref(), a.pdev.as_deref(), a.client_id),
        (Some("amdgpu"), Some(PDEV), Some(7))
    );
    assert_eq!(a.engines.get("gfx"), Some(&1_000));
    assert_eq!(a.engines.get("compute"), Some(&20));
    assert_eq!(a.mem_bytes, Some(4096 << 10));
    let i = fdinfo::parse(
        "drm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t3\ndrm-engine-render:\t9000 ns\n\
         drm-engine-copy:\t0 ns\ndrm-engine-capacity-video:\t2\ndrm-engine-video:\t10 ns\n\
         drm-total-local0:\t8 MiB\ndrm-resident-local0:\t6 MiB\n",
    )
    .unwrap();
    assert_eq!(i.engines.get("render"), Some(&9000));
    assert!(!i.engines.contains_key("capacity-video"));
    assert_eq!(i.capacity.get("video"), Some(&2));
    assert_eq!(i.mem_bytes, Some(6 << 20), "resident before total");
    let x = fdinfo::parse(
        "drm-driver:\txe\ndrm-client-id:\t9\ndrm-cycles-rcs:\t500\ndrm-total-cycles-rcs:\t1000\n\
         drm-cycles-bcs:\t1\ndrm-total-vram0:\t1 GiB\n",
    )
    .unwrap();
    assert_eq!(x.cycles.get("rcs"), Some(&(500, 1000)));
    assert!(!x.cycles.contains_key("bcs"), "no total: no ratio");
    assert_eq!(x.mem_bytes, Some(1 << 30));
    assert_eq!(fdinfo::parse("pos:\t0\nflags:\t02\n"), None);
}

fn uses(c: &mut Clients, now: f64) -> Vec<(u32, Option<f64>, Option<u64>)> {
    c.read(now, &|_| None)
        .into_iter()
        .map(|u| (u.pid, u.util_pct.map(|p| (p * 1e6).round() / 1e6), u.mem_bytes))
        .collect()
}

#[test]
fn two_clients_one_shared_over_two_fds_and_two_processes_counts_once() {
    let t = tempfile::tempdir().unwrap();
    let proc = t.path().join("proc");
    // pid 100: client 1 through fds 5 and 6 (card and render node), and a pipe.
    // pid 101: a fork of 100 that inherited fd 5 (client 1 again); pid 200: client 2.
    let set = |g1: u64, g2: u64| {
        for (pid, fd, node) in [
            (100, 5, "/dev/dri/card0"),
            (100, 6, "/dev/dri/renderD128"),
            (101, 5, "/dev/dri/card0"),
        ] {
            drm_fd(&proc, pid, fd, node, &amdgpu_fdinfo(PDEV, 1, g1, 0, 1024));
        }
        drm_fd(
            &proc,
            200,
            4,
            "/dev/dri/renderD128",
            &amdgpu_fdinfo(PDEV, 2, g2, g2 / 2, 3072),
        );
    };
    set(0, 0);
    other_fd(&proc, 100, 3, "pipe:[1234]");
    let mut c = Clients::new(proc.clone());
    assert_eq!(
        uses(&mut c, 10.0),
        vec![(100, None, Some(1 << 20)), (200, None, Some(3 << 20))]
    );
    assert_eq!(c.holder_count(), 3);
    // 1 s later: client 1 ran 0.5 s of gfx, client 2 0.2 s gfx + 0.1 s compute.
    set(500_000_000, 200_000_000);
    assert_eq!(
        uses(&mut c, 11.0),
        vec![(100, Some(50.0), Some(1 << 20)), (200, Some(30.0), Some(3 << 20))],
        "client 1 once, for the lowest pid; pid 101 adds nothing"
    );
    assert_eq!(c.fdinfo_reads, 4, "only DRM fds are read");
}

#[test]
fn an_engine_counter_going_backwards_holds_its_previous_value() {
    let t = tempfile::tempdir().unwrap();
    let proc = t.path().join("proc");
    let mut c = Clients::new(proc.clone());
    drm_fd(
        &proc,
        300,
        7,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 4, 800_000_000, 0, 0),
    );
    uses(&mut c, 0.0);
    drm_fd(
        &proc,
        300,
        7,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 4, 600_000_000, 0, 0),
    );
    assert_eq!(
        uses(&mut c, 1.0),
        vec![(300, Some(0.0), Some(0))],
        "backwards: 0, not negative"
    );
    drm_fd(
        &proc,
        300,
        7,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 4, 900_000_000, 0, 0),
    );
    assert_eq!(
        uses(&mut c, 2.0),
        vec![(300, Some(10.0), Some(0))],
        "from the held 800 ms, not 600"
    );
}

#[test]
fn xe_cycles_give_the_share_of_total_cycles() {
    let t = tempfile::tempdir().unwrap();
    let proc = t.path().join("proc");
    let info = |c: u64, tot: u64| {
        format!(
            "drm-driver:\txe\ndrm-pdev:\t0000:04:00.0\ndrm-client-id:\t5\ndrm-cycles-rcs:\t{c}\ndrm-total-cycles-rcs:\t{tot}\n"
        )
    };
    drm_fd(&proc, 400, 3, "/dev/dri/renderD130", &info(100, 1000));
    let mut c = Clients::new(proc.clone());
    uses(&mut c, 0.0);
    drm_fd(&proc, 400, 3, "/dev/dri/renderD130", &info(350, 2000));
    assert_eq!(uses(&mut c, 1.0), vec![(400, Some(25.0), None)]);
    // Two video engines in the class: their cycles add up, so 1000 of 1000 is half the class.
    let two = |c: u64, tot: u64| {
        format!(
            "drm-driver:\txe\ndrm-pdev:\t0000:04:00.0\ndrm-client-id:\t6\ndrm-engine-capacity-vcs:\t2\ndrm-cycles-vcs:\t{c}\ndrm-total-cycles-vcs:\t{tot}\n"
        )
    };
    drm_fd(&proc, 401, 3, "/dev/dri/renderD130", &two(0, 0));
    uses(&mut c, 2.0);
    drm_fd(&proc, 401, 3, "/dev/dri/renderD130", &two(1000, 1000));
    assert_eq!(uses(&mut c, 3.0)[1], (401, Some(50.0), None));
}

#[test]
fn a_process_exiting_mid_interval_is_dropped_with_its_client_state() {
    let t = tempfile::tempdir().unwrap();
    let proc = t.path().join("proc");
    drm_fd(
        &proc,
        500,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 8, 0, 0, 0),
    );
    drm_fd(
        &proc,
        501,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 9, 0, 0, 0),
    );
    let mut c = Clients::new(proc.clone());
    uses(&mut c, 0.0);
    // 501 exits between the scan and the fdinfo read: its files are gone.
    std::fs::remove_dir_all(proc.join("501")).unwrap();
    drm_fd(
        &proc,
        500,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 8, 400_000_000, 0, 0),
    );
    assert_eq!(uses(&mut c, 1.0), vec![(500, Some(40.0), Some(0))]);
    assert_eq!(c.holder_count(), 1);
    // A new process reusing client id 9 later starts from no baseline, not from the old counters.
    drm_fd(
        &proc,
        502,
        3,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 9, 900_000_000, 0, 0),
    );
    assert_eq!(uses(&mut c, 2.0)[1], (502, None, Some(0)));
}

#[test]
fn holders_of_known_pids_are_rescanned_only_every_few_seconds() {
    let t = tempfile::tempdir().unwrap();
    let proc = t.path().join("proc");
    other_fd(&proc, 600, 0, "/dev/null");
    let mut c = Clients::new(proc.clone());
    assert!(uses(&mut c, 0.0).is_empty());
    // pid 600 opens the GPU: not seen until the next full scan.
    drm_fd(
        &proc,
        600,
        9,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 1, 0, 0, 0),
    );
    assert!(uses(&mut c, 1.0).is_empty());
    // A new pid is scanned at once.
    drm_fd(
        &proc,
        601,
        9,
        "/dev/dri/renderD128",
        &amdgpu_fdinfo(PDEV, 2, 0, 0, 0),
    );
    assert_eq!(uses(&mut c, 2.0).len(), 1);
    assert_eq!(uses(&mut c, fdinfo::RESCAN_S + 0.1).len(), 2);
}
