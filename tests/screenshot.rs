#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The README's picture: `scripts/screenshot.sh` replays the synthetic GPU training
//! (`examples/gen_training_recording.rs`) in tmux and converts the screen with `scripts/ansi2svg.py`.
//! The converter's own unit tests run here, and the script end to end into a temp file: the SVG is
//! well-formed and shows the header, both GPUs, the training job and the idle holder.
//!
//! Needs python3 (and tmux for the script); run with `cargo test --test screenshot -- --include-ignored`.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
#[ignore = "needs python3"]
fn ansi2svg_unit_tests_pass() {
    let out = Command::new("python3")
        .arg("scripts/test_ansi2svg.py")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 scripts/test_ansi2svg.py:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs tmux and python3"]
fn screenshot_script_draws_the_replayed_training() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("screen.svg");
    let out = Command::new("bash")
        .arg("scripts/screenshot.sh")
        .arg(&svg_path)
        .env("KWTOP_BIN", env!("CARGO_BIN_EXE_kwtop"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/screenshot.sh:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; \
             r = E.parse(sys.argv[1]).getroot(); \
             print(r.tag); \
             print(''.join(t.text or '' for t in r.iter('{http://www.w3.org/2000/svg}text')))",
        ])
        .arg(&svg_path)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "not well-formed XML: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let text = String::from_utf8(parsed.stdout).unwrap();
    assert!(text.starts_with("{http://www.w3.org/2000/svg}svg\n"), "{text}");
    for expected in [
        "gpu-node-07 (replay)",
        "00:10:00",
        "GPU0",
        "GPU1",
        "TOTAL W",
        "python train.py",
        "1 idle holder on gpu1",
        "IDLE",
    ] {
        assert!(
            text.contains(expected),
            "'{expected}' is not in the picture: {text}"
        );
    }
    // The training job is the first process row, the idle Jupyter kernel below it.
    let header = text.find("PID").unwrap();
    let first = text[header..].find("48213").unwrap();
    let kernel = text[header..].find("51877").unwrap();
    assert!(first < kernel, "{text}");
}
