use super::*;

const EXAMPLE: &str = include_str!("../../config.example.toml");

#[test]
fn example_config_equals_defaults() {
    let parsed: ConfigFile = toml::from_str(EXAMPLE).expect("config.example.toml parses");
    assert_eq!(
        parsed,
        ConfigFile::default(),
        "config.example.toml drifted from the built-in defaults"
    );
    let s = parse(EXAMPLE, None).expect("example validates");
    assert_eq!(s.interval, Duration::from_secs(1));
}

#[test]
fn defaults_are_valid() {
    let s = Settings::default();
    assert_eq!(s.impact.grid.label, "world average");
    assert_eq!(s.engine.idle_holder.min_memory_bytes, 256 << 20);
}

/// Tests build stages from their own defaults; those must be what an empty config gives.
#[test]
fn stage_defaults_equal_the_config_defaults() {
    let s = Settings::default();
    assert_eq!(s.engine, EngineParams::default());
    assert_eq!(s.impact, ImpactParams::default());
    assert_eq!(s.app(), AppParams::default());
    assert_eq!(s.ui, UiParams::default());
    assert_eq!(s.export.redactor, Redactor::default());
    assert_eq!(s.export.checkpoint, Some(Duration::from_secs(300)));
}

#[test]
fn stage_parameters_come_from_their_sections() {
    let s = parse(
        "[attribution]\nmax_exited_processes = 7\ncharge_idle = true\n\n[export]\ncheckpoint = \"0s\"\n\
         cmdline = \"name\"\n\n[serve]\nlisten = \" [::1]:9\"\ntop_processes = 3\n\n[ui]\nmax_fps = 2.5\n",
        None,
    )
    .expect("valid");
    assert_eq!(s.engine.max_exited_processes, 7);
    assert!(s.engine.attribution.charge_idle);
    assert_eq!(s.export.checkpoint, None, "0s turns checkpoints off");
    assert_eq!(s.export.redactor.mode, crate::redact::CmdlineMode::Name);
    assert_eq!(s.serve.listen, "[::1]:9".parse().unwrap());
    assert_eq!(s.serve.top_processes, 3);
    assert_eq!(s.ui.max_fps, 2.5);
}

#[test]
fn every_default_key_is_documented_in_the_example() {
    // Optional keys appear commented out; every serialized default key must appear as `key =`.
    let text = toml::to_string(&ConfigFile::default()).expect("serialize");
    for line in text.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap_or("").trim();
        assert!(
            EXAMPLE.contains(&format!("{key} = ")),
            "key '{key}' missing from config.example.toml"
        );
    }
}

fn err(text: &str) -> ConfigError {
    parse(text, Some(Path::new("/etc/kwtop.toml"))).expect_err("must be rejected")
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err("[sampling]\ninterval = \"1s\"\nintervall = \"2s\"\n");
    assert_eq!(e.file, "/etc/kwtop.toml");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("sampling.intervall"));
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn unknown_section_is_rejected() {
    let e = err("[sampler]\ninterval = \"1s\"\n");
    assert_eq!(e.line, Some(1));
    assert_eq!(e.key.as_deref(), Some("sampler"));
}

#[test]
fn bad_duration_names_value() {
    let e = err("[sampling]\ninterval = \"fast\"\n");
    assert_eq!(e.line, Some(2));
    assert_eq!(e.key.as_deref(), Some("sampling.interval"));
    assert!(e.to_string().contains("fast"), "{e}");
}

#[test]
fn wrong_type_names_value() {
    let e = err("[impact]\npue = \"high\"\n");
    assert_eq!(e.line, Some(2));
    assert_eq!(e.key.as_deref(), Some("impact.pue"));
    assert!(e.to_string().contains("high"), "{e}");
}

#[test]
fn out_of_range_values_name_key_and_line() {
    let e = err("# comment\n[impact]\n\npue = 0.5\n");
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("impact.pue"));
    assert!(e.to_string().contains("'0.5'"), "{e}");

    let e = err("[sampling]\ninterval = \"10ms\"\n");
    assert_eq!(e.key.as_deref(), Some("sampling.interval"));
    assert_eq!(e.line, Some(2));

    let e = err("[cpu]\nidle_fraction = 1.5\n");
    assert_eq!(e.key.as_deref(), Some("cpu.idle_fraction"));

    let e = err("[idle_holder]\nmax_sm_pct = 101\n");
    assert_eq!(e.key.as_deref(), Some("idle_holder.max_sm_pct"));
}

#[test]
fn grid_accepts_number_code_and_region() {
    assert_eq!(
        parse("[impact]\ngrid = 350\n", None)
            .expect("number")
            .impact
            .grid
            .g_per_kwh,
        350.0
    );
    assert_eq!(
        parse("[impact]\ngrid = \"de\"\n", None)
            .expect("code")
            .impact
            .grid
            .label,
        "DE"
    );
    let s = parse("[impact]\ngrid = \"gcp:europe-west4\"\n", None).expect("region");
    assert!(s.impact.grid.g_per_kwh > 0.0);
    let e = err("[impact]\ngrid = \"XX\"\n");
    assert_eq!(e.key.as_deref(), Some("impact.grid"));
    assert_eq!(e.line, Some(2));
    assert!(e.to_string().contains("XX"));
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("[sampling\ninterval = 1\n");
    assert_eq!(e.line, Some(1));
}

#[test]
fn display_format() {
    let e = err("[impact]\npue = 0.5\n");
    let s = e.to_string();
    assert!(
        s.starts_with("config error in /etc/kwtop.toml:2:1: key 'impact.pue': invalid value '0.5'"),
        "{s}"
    );
}

#[test]
fn compare_grids_and_price_are_resolved_and_checked() {
    let s = parse(
        "[impact]\ngrid = \"DE\"\ncompare = [\"FR\", \"aws:us-east-1\", 100]\nprice_per_kwh = 0.3\ncurrency = \"EUR\"\n",
        None,
    )
    .expect("valid");
    let labels: Vec<&str> = s.impact.compare.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["FR", "aws:us-east-1", "config"]);
    assert_eq!(s.impact.compare[0], crate::impact::resolve_grid("FR").unwrap());
    let p = s.impact.price.as_ref().expect("price");
    assert_eq!((p.per_kwh, p.currency.as_str()), (0.3, "EUR"));

    let e = err("[impact]\ncompare = [\"FR\", \"XX\"]\n");
    let text = e.to_string();
    assert!(
        text.contains("impact.compare") && text.contains("XX") && text.contains("kwtop.toml:2:"),
        "{text}"
    );
    let e = err("[impact]\nprice_per_kwh = 0.3\n").to_string();
    assert!(e.contains("price_per_kwh") && e.contains("currency"), "{e}");
    let e = err("[impact]\ncurrency = \"EUR\"\n").to_string();
    assert!(e.contains("currency") && e.contains("price_per_kwh"), "{e}");
    let e = err("[impact]\nprice_per_kwh = -1\ncurrency = \"EUR\"\n").to_string();
    assert!(e.contains("price_per_kwh") && e.contains("negative"), "{e}");
}
