#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The deployment files under `assets/` are checked by the tools that will read them: the systemd
//! unit by `systemd-analyze verify` (and `security`), the Kubernetes manifests by
//! `kubernetes-validate` against the API schemas, the Prometheus scrape jobs by `promtool check
//! config`; and what kwtop itself reads from them (the ConfigMap's config, the unit's config path,
//! the port) by kwtop's own parser.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn asset(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(asset(rel)).unwrap()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The ConfigMap's `config.toml: |` block, unindented.
fn configmap_config(yaml: &str) -> String {
    let start = yaml
        .find("  config.toml: |\n")
        .expect("no config.toml in the ConfigMap")
        + 17;
    yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn daemonset_points_kwtop_at_the_host_mounts_on_its_default_port() {
    let yaml = read("k8s/kwtop-daemonset.yaml");
    let settings = kwtop::config::parse(&configmap_config(&yaml), None).unwrap();
    assert_eq!(settings.sources.proc_root, Path::new("/host/proc"));
    assert_eq!(settings.sources.sysfs_root, Path::new("/host/sys"));
    assert_eq!(
        settings.sources.powercap_root,
        Path::new("/host/sys/class/powercap")
    );
    for mount in [
        "mountPath: /host/proc\n              readOnly: true",
        "mountPath: /host/sys\n              readOnly: true",
        "mountPath: /etc/kwtop\n              readOnly: true",
        "path: /proc\n",
        "path: /sys\n",
        "- /etc/kwtop/config.toml\n",
        "hostPID: true",
        "readOnlyRootFilesystem: true",
    ] {
        assert!(yaml.contains(mount), "{mount:?} missing");
    }
    let port = kwtop::config::Settings::default().serve.listen.port();
    assert_eq!(port, 9875);
    for use_of_port in [
        format!("- 0.0.0.0:{port}\n"),
        format!("prometheus.io/port: \"{port}\""),
        format!("containerPort: {port}\n"),
    ] {
        assert!(yaml.contains(&use_of_port), "{use_of_port:?} missing");
    }
    let unit = read("systemd/kwtop-serve.service");
    assert!(
        unit.contains(&format!("serve --listen 127.0.0.1:{port}\n")),
        "{unit}"
    );
}

/// The unit sets XDG_CONFIG_HOME=/etc so that kwtop reads /etc/kwtop/config.toml when it exists.
#[test]
fn unit_config_location_is_where_kwtop_looks() {
    let unit = read("systemd/kwtop-serve.service");
    assert!(unit.contains("\nEnvironment=XDG_CONFIG_HOME=/etc\n"), "{unit}");
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("kwtop")).unwrap();
    let config = etc.path().join("kwtop/config.toml");
    std::fs::write(&config, "[serve]\nlisten = \"nonsense\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kwtop"))
        .arg("serve")
        .env("HOME", "/")
        .env("XDG_CONFIG_HOME", etc.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains(&format!("{}:2:1", config.display())),
        "{}",
        both(&out)
    );
}

#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_unit_passes_systemd_analyze_verify_and_security() {
    let unit = read("systemd/kwtop-serve.service");
    let shipped = "ExecStart=/usr/local/bin/kwtop ";
    assert!(unit.contains(shipped), "{unit}");
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kwtop-serve.service");
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_kwtop"));
    std::fs::write(&copy, unit.replace(shipped, &built)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze not found: apt-get install systemd");
    let text = both(&out);
    // verify exits 0 on unknown keys and bad values, printing them: any line about the unit fails.
    let about_unit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("kwtop-serve") || l.contains(&*copy.to_string_lossy()))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    // The hardening stays: exposure 1.6 as shipped ("OK" up to 2.0 on systemd's 0-10 scale).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "systemd-analyze security:\n{}", both(&out));
}

#[test]
#[ignore = "needs kubernetes-validate"]
fn k8s_manifests_pass_kubernetes_validate() {
    let files = [
        asset("k8s/kwtop-daemonset.yaml"),
        asset("k8s/kwtop-networkpolicy.yaml"),
    ];
    // The bundled schemas of the newest release, and of 1.30, the first with recursiveReadOnly.
    for version in [None, Some("1.30.0")] {
        let mut cmd = Command::new("kubernetes-validate");
        cmd.args(["--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["--kubernetes-version", v]);
        }
        let out = cmd
            .args(&files)
            .output()
            .expect("kubernetes-validate not found: pip install kubernetes-validate");
        assert!(
            out.status.success() && !both(&out).contains("ERROR"),
            "kubernetes-validate {version:?}:\n{}",
            both(&out)
        );
    }
}

#[test]
#[ignore = "needs prometheus (promtool)"]
fn prometheus_scrape_config_passes_promtool() {
    let path = asset("prometheus/kwtop-scrape.yml");
    let check = |p: &Path| {
        Command::new("promtool")
            .args(["check", "config"])
            .arg(p)
            .output()
            .expect("promtool not found: apt-get install prometheus")
    };
    let out = check(&path);
    if out.status.success() {
        return;
    }
    // Debian's Prometheus is built without Kubernetes service discovery: check everything else,
    // the relabelling included, with the discovery block swapped for a static target.
    let text = both(&out);
    assert!(
        text.contains("field kubernetes_sd_configs not found"),
        "promtool check config:\n{text}"
    );
    eprintln!("promtool lacks kubernetes_sd_configs (Debian build): checking the rest");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let start = yaml.find("    kubernetes_sd_configs:\n").unwrap();
    let end = start + yaml[start..].find("    relabel_configs:\n").unwrap();
    let swapped = format!(
        "{}    static_configs:\n      - targets: [\"10.0.0.1:9875\"]\n{}",
        &yaml[..start],
        &yaml[end..]
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kwtop-scrape.yml");
    std::fs::write(&copy, swapped).unwrap();
    let out = check(&copy);
    assert!(out.status.success(), "promtool check config:\n{}", both(&out));
}
