#![allow(clippy::float_cmp)]

use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn err(spec: &str) -> String {
    resolve_grid(spec).expect_err(spec)
}

const COUNTRY_HEAD: &str = "iso2,iso3,country,year,g_co2e_per_kwh,source\n";
const CLOUD_HEAD: &str = "provider,region,location,g_co2e_per_kwh,source\r\n";

#[test]
fn country_text_with_quotes_and_a_bom_reads() {
    let text = format!(
        "\u{feff}{COUNTRY_HEAD}DE,DEU,Germany,2024,344.14,\"Ember, via co2.js\"\n,WLD,World,2024,0,plain\n"
    );
    let rows = read_country(&text).unwrap();
    assert_eq!(rows.len(), 2);
    let (de, w) = (rows[0].grid(), rows[1].grid());
    assert_eq!(
        (de.label.as_str(), de.g_per_kwh, de.year, de.source.as_str()),
        ("DE", 344.14, Some(2024), "Ember, via co2.js")
    );
    assert_eq!((w.label.as_str(), w.g_per_kwh), (WORLD_LABEL, 0.0));
}

#[test]
fn a_bad_country_row_is_named_by_its_line() {
    let bad =
        |row: &str| read_country(&format!("{COUNTRY_HEAD}DE,DEU,Germany,2024,344,src\n{row}\n")).unwrap_err();
    let e = bad("FR,FRA,France,20x4,50,src");
    assert_eq!(
        e,
        "country.csv line 3: year \"20x4\": invalid digit found in string"
    );
    let e = bad("FR,FRA,France,70000,50,src");
    assert!(e.starts_with("country.csv line 3: year \"70000\": "), "{e}");
    let e = bad("FR,FRA,France,2024,-1,src");
    assert_eq!(
        e,
        "country.csv line 3: g_co2e_per_kwh -1: need a finite, non-negative number"
    );
    let e = bad("FR,FRA,France,2024,inf,src");
    assert!(
        e.starts_with("country.csv line 3: g_co2e_per_kwh inf: need a finite"),
        "{e}"
    );
    let e = bad("FR,FRA,France,2024,,src");
    assert!(e.starts_with("country.csv line 3: g_co2e_per_kwh \"\": "), "{e}");
    // An unquoted comma in the source makes one field too many.
    let e = bad("FR,FRA,France,2024,50,Ember, via co2.js");
    assert_eq!(e, "country.csv line 3: 7 fields, expected 6");
}

#[test]
fn a_table_with_another_header_is_refused() {
    let e = read_country("iso3,iso2,country,year,g_co2e_per_kwh,source\n").unwrap_err();
    assert_eq!(
        e,
        "country.csv: header \"iso3,iso2,country,year,g_co2e_per_kwh,source\", expected \"iso2,iso3,country,year,g_co2e_per_kwh,source\""
    );
    let e = read_cloud("provider,region,location,g,source\r\n").unwrap_err();
    assert!(e.starts_with("cloud.csv: header \"provider,region,location,g,source\", expected \"provider,region,location,g_co2e_per_kwh,source\""), "{e}");
    assert!(read_cloud("").unwrap_err().starts_with("cloud.csv: empty table"));
}

#[test]
fn cloud_text_with_crlf_reads_and_names_lines() {
    // cloud.csv ends its lines in CRLF: the line named must still be the row's own.
    let text = format!(
        "{CLOUD_HEAD}GCP,europe-west4,\"Eemshaven, NL\",209.77,\"Google (year 2024, location-based)\"\r\naws,eu-west-1,Ireland,278.6,CCF\r\n"
    );
    let rows = read_cloud(&text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].provider.as_str(), rows[0].location.as_str()),
        ("gcp", "Eemshaven, NL")
    );
    let g = rows[0].grid();
    assert_eq!((g.label.as_str(), g.year), ("gcp:europe-west4", Some(2024)));
    assert_eq!(rows[1].grid().year, None);
    let e = read_cloud(&format!("{text}aws,us-east-1,Virginia,NaN,CCF\r\n")).unwrap_err();
    assert!(e.starts_with("cloud.csv line 4: g_co2e_per_kwh NaN: "), "{e}");
    let e = read_cloud(&format!("{text}aws,us-east-1,Virginia\r\n")).unwrap_err();
    assert_eq!(e, "cloud.csv line 4: 3 fields, expected 5");
}

#[test]
fn the_shipped_tables_read_every_line() {
    // One record per line (no field spans lines), so a stray quote swallowing rows shows here.
    let lines = |t: &str| t.lines().filter(|l| !l.trim().is_empty()).count() - 1;
    let country = COUNTRY_PACKED.text().unwrap();
    let cloud = CLOUD_PACKED.text().unwrap();
    assert_eq!(country, include_str!("../../assets/grid/country.csv"));
    assert_eq!(cloud, include_str!("../../assets/grid/cloud.csv"));
    assert_eq!(read_country(&country).unwrap().len(), lines(&country));
    assert_eq!(read_cloud(&cloud).unwrap().len(), lines(&cloud));
}

#[test]
fn every_country_row_parses() {
    let rows = country_rows().unwrap();
    assert_eq!(rows.len(), 216); // 214 countries/territories + WLD + EUU
    let mut iso2_seen = std::collections::HashSet::new();
    let mut iso3_seen = std::collections::HashSet::new();
    for r in rows {
        assert!(r.g.is_finite() && r.g >= 0.0, "{r:?}");
        // Central African Republic is 0.0 in the Ember data (2022); every other row is > 0.
        if r.iso3 != "CAF" {
            assert!(r.g > 0.0, "{r:?}");
        }
        assert!((2000..=2100).contains(&r.year), "{r:?}");
        assert!(
            r.iso3.len() == 3 && r.iso3.bytes().all(|b| b.is_ascii_uppercase()),
            "{r:?}"
        );
        assert!(iso3_seen.insert(r.iso3.clone()), "duplicate {r:?}");
        if r.iso3 == "WLD" {
            assert!(r.iso2.is_empty());
        } else {
            assert!(
                r.iso2.len() == 2 && r.iso2.bytes().all(|b| b.is_ascii_uppercase()),
                "{r:?}"
            );
            assert!(iso2_seen.insert(r.iso2.clone()), "duplicate {r:?}");
        }
        assert!(!r.country.is_empty() && r.source.contains("CC BY 4.0"), "{r:?}");
    }
}

#[test]
fn every_cloud_row_parses() {
    let rows = cloud_rows().unwrap();
    assert_eq!(rows.len(), 79);
    for (p, n) in [("gcp", 44), ("aws", 12), ("azure", 23)] {
        assert_eq!(rows.iter().filter(|r| r.provider == p).count(), n, "{p}");
    }
    for r in rows {
        assert!(r.g.is_finite() && r.g > 0.0, "{r:?}");
        assert!(PROVIDERS.contains(&r.provider.as_str()), "{r:?}");
        assert!(
            !r.region.is_empty() && !r.location.is_empty() && !r.source.is_empty(),
            "{r:?}"
        );
        assert!(r.source.contains("Apache-2.0"), "{r:?}");
    }
}

#[test]
fn every_table_entry_resolves_by_all_its_names() {
    for r in country_rows().unwrap() {
        let by3 = resolve_grid(&r.iso3.to_lowercase()).unwrap();
        assert_eq!(by3.g_per_kwh, r.g);
        assert_eq!(by3.year, Some(r.year));
        assert_eq!(by3.source, r.source);
        if !r.iso2.is_empty() {
            assert_eq!(resolve_grid(&r.iso2).unwrap(), by3);
            assert_eq!(by3.label, r.iso2);
        }
    }
    for r in cloud_rows().unwrap() {
        let spec = format!("{}:{}", r.provider, r.region);
        let g = resolve_grid(&spec.to_uppercase()).unwrap();
        assert_eq!(g.g_per_kwh, r.g);
        assert_eq!(g.label, spec);
    }
    let all = known_grids().unwrap();
    assert_eq!(all.len(), 216 + 79);
    for e in &all {
        assert_eq!(resolve_grid(&e.spec).unwrap(), e.grid, "{}", e.spec);
    }
}

#[test]
fn germany_by_any_code_and_case() {
    let de = resolve_grid("DE").unwrap();
    for spec in ["DEU", "de", "deu", "De", "  de\t"] {
        assert_eq!(resolve_grid(spec).unwrap(), de, "{spec}");
    }
    assert_eq!(de.g_per_kwh, 342.06);
    assert_eq!(de.label, "DE");
    assert_eq!(de.year, Some(2024));
    assert!(de.source.starts_with("Ember Yearly Electricity Data (CC BY 4.0)"));
}

#[test]
fn european_union() {
    let eu = resolve_grid("EU").unwrap();
    assert_eq!(resolve_grid("euu").unwrap(), eu);
    assert_eq!(eu.g_per_kwh, 213.02);
    assert_eq!(eu.label, "EU");
    assert_eq!(eu.year, Some(2024));
}

#[test]
fn world() {
    let w = world_average();
    assert_eq!(w.g_per_kwh, 472.94);
    assert_eq!(w.g_per_kwh.round(), 473.0);
    assert_eq!(w.label, "world average");
    assert_eq!(w.year, Some(2024));
    assert!(w.source.starts_with("Ember"));
    assert_eq!(resolve_grid("WLD").unwrap(), w);
    assert_eq!(resolve_grid("wld").unwrap(), w);
    assert_eq!(resolve_grid("World").unwrap(), w);
    // The fallback mirrors the table.
    assert_eq!(w.g_per_kwh, WORLD_FALLBACK_G_PER_KWH);
    assert_eq!(w.year, Some(WORLD_FALLBACK_YEAR));
    assert_eq!(w.source, WORLD_FALLBACK_SOURCE);
}

#[test]
fn cloud_regions() {
    // Quoted location "Frankfurt, DE" must not shift the columns.
    let aws = resolve_grid("aws:eu-central-1").unwrap();
    assert_eq!(aws.g_per_kwh, 311.0);
    assert_eq!(aws.label, "aws:eu-central-1");
    assert_eq!(aws.year, None);
    assert!(
        aws.source
            .starts_with("Cloud Carbon Footprint default factors (Apache-2.0)")
    );
    assert_eq!(resolve_grid("AWS:EU-Central-1").unwrap(), aws);
    assert_eq!(resolve_grid("aws:us-east-1").unwrap().g_per_kwh, 379.07);

    // Quoted source with commas.
    let gcp = resolve_grid("gcp:europe-west4").unwrap();
    assert_eq!(gcp.g_per_kwh, 208.81);
    assert_eq!(gcp.year, Some(2024));
    assert!(
        gcp.source
            .contains("(year 2024, location-based grid intensity; Apache-2.0)")
    );
    assert_eq!(resolve_grid("GCP:Europe-West4").unwrap(), gcp);

    let az = resolve_grid("azure:westeurope").unwrap();
    assert_eq!(az.g_per_kwh, 328.4);
    assert_eq!(az.label, "azure:westeurope");
    assert_eq!(resolve_grid("aws:eu-west-1").unwrap().g_per_kwh, 278.6);

    let e = known_grids().unwrap();
    let fra = e.iter().find(|e| e.spec == "aws:eu-central-1").unwrap();
    assert_eq!(fra.name, "Frankfurt, DE");
}

#[test]
fn numbers() {
    let g = resolve_grid("350").unwrap();
    assert_eq!(
        g,
        GridIntensity {
            g_per_kwh: 350.0,
            label: "config".into(),
            source: "set in config".into(),
            year: None
        }
    );
    assert_eq!(resolve_grid(" 350.5 ").unwrap().g_per_kwh, 350.5);
    assert_eq!(resolve_grid("0").unwrap().g_per_kwh, 0.0);
    assert_eq!(resolve_grid("1e3").unwrap().g_per_kwh, 1000.0);
}

#[test]
fn bad_inputs_are_explained() {
    assert!(err("").contains("empty"));
    assert!(err("   ").contains("empty"));
    assert_eq!(
        err("XX"),
        "unknown country code 'XX': use an ISO 3166-1 code such as DE or DEU, a cloud region such as gcp:europe-west4, or a number in gCO2e/kWh"
    );
    for spec in [
        "XYZ",
        "Germany",
        "-5",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "350g",
        "aws:nowhere",
        "gcp:",
        "foo:bar",
        ":x",
    ] {
        let e = err(spec);
        assert!(e.contains(&format!("'{spec}'")), "{spec}: {e}");
    }
    assert!(err("-5").contains("not negative"));
    assert!(err("NaN").contains("finite"));
    assert!(err("350g").contains("not a number"));
    let e = err("aws:nowhere");
    assert!(
        e.contains("unknown aws region 'nowhere'") && e.contains("eu-west-1"),
        "{e}"
    );
    assert!(!e.contains("westeurope"), "{e}");
    assert!(err("foo:bar").contains("unknown cloud provider 'foo'"));
    assert!(err("XX").contains("gcp:europe-west4"));
}

#[test]
fn arithmetic_is_exact() {
    let p = ImpactParams {
        pue: 1.5,
        grid: resolve_grid("400").unwrap(),
        ..ImpactParams::default()
    };
    let j = 3.6e6;
    assert_eq!(p.kwh(j), 1.0);
    assert_eq!(p.facility_kwh(j), 1.5);
    assert_eq!(p.co2e_g(j), 600.0);
    let e = p.equivalents(j);
    assert!(close(e.phone_charges, 1.5 / 0.019), "{e:?}");
    assert!(close(e.phone_charges, 78.947_368_421_052_63), "{e:?}");
    assert!(close(e.household_days, 1.5 / (3600.0 / 365.0)), "{e:?}");
    assert!(close(e.household_days, 0.152_083_333_333_333_33), "{e:?}");
    assert!(close(e.car_km, 600.0 / 163.0), "{e:?}");
    assert!(close(e.car_km, 3.680_981_595_092_024_5), "{e:?}");
    assert_eq!(p.equivalents(0.0), Equivalents::default());
    assert_eq!(p.kwh(J_PER_KWH * 2.5), 2.5);
}

#[test]
fn defaults_and_locales() {
    assert_eq!(DEFAULT_PHONE_CHARGE_KWH, 0.019);
    assert_eq!(DEFAULT_HOUSEHOLD_KWH_PER_YEAR, 3600.0);
    assert_eq!(DEFAULT_CAR_G_PER_KM, 163.0);
    assert_eq!(DEFAULT_PUE, 1.0);
    assert_eq!(household_kwh_for_locale("eu"), Some(3600.0));
    assert_eq!(household_kwh_for_locale("US"), Some(10260.0));
    assert_eq!(household_kwh_for_locale("uk"), Some(2700.0));
    assert_eq!(household_kwh_for_locale("gb"), Some(2700.0));
    assert_eq!(household_kwh_for_locale("fr"), None);
    assert_eq!(car_g_per_km_for_locale("us"), Some(244.0));
    assert_eq!(car_g_per_km_for_locale("eu"), Some(163.0));
    let d = ImpactParams::default();
    assert_eq!(d.pue, 1.0);
    assert_eq!(d.grid, world_average());
    assert_eq!(d.validate(), Ok(()));
}

#[test]
fn validate_names_the_bad_field() {
    let ok = ImpactParams::default();
    assert!(
        ImpactParams {
            pue: 0.9,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .contains("PUE")
    );
    assert!(
        ImpactParams {
            pue: f64::NAN,
            ..ok.clone()
        }
        .validate()
        .is_err()
    );
    assert!(
        ImpactParams {
            phone_charge_kwh: 0.0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .contains("phone")
    );
    assert!(
        ImpactParams {
            household_kwh_per_year: -1.0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .contains("household")
    );
    assert!(
        ImpactParams {
            car_g_per_km: f64::INFINITY,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .contains("car")
    );
    let mut bad_grid = ok;
    bad_grid.grid.g_per_kwh = -1.0;
    assert!(bad_grid.validate().unwrap_err().contains("grid"));
}

#[test]
fn serde_round_trip() {
    let g = resolve_grid("gcp:europe-west4").unwrap();
    let s = serde_json::to_string(&g).unwrap();
    assert!(s.contains("\"label\":\"gcp:europe-west4\""), "{s}");
    assert_eq!(serde_json::from_str::<GridIntensity>(&s).unwrap(), g);
    let e = Equivalents {
        phone_charges: 1.0,
        household_days: 2.0,
        car_km: 3.0,
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(s, r#"{"phone_charges":1.0,"household_days":2.0,"car_km":3.0}"#);
    assert_eq!(serde_json::from_str::<Equivalents>(&s).unwrap(), e);
}
