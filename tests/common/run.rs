//! `kwtop` with a config that turns NVML off and exports into `DIR/out`, for the `kwtop run` tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

pub fn kwtop(dir: &Path) -> Command {
    let cfg = dir.join("kwtop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sources]\nnvml = false\n[export]\ndir = \"{}\"\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwtop"));
    c.arg("--config").arg(cfg);
    c
}
