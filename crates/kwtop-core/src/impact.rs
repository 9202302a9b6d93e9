//! Turning measured energy into impact figures: facility kWh (× PUE), grams of CO2e (× grid
//! intensity) and everyday equivalents (phone charges, household-days of electricity, car km).
//!
//! One policy everywhere (screen, snapshot, summary, Prometheus): kWh and joules are **IT energy**,
//! what the devices measured, so process rows add up to the totals; **CO2e** = IT kWh × PUE × grid,
//! for every row and total alike (so CO2e adds up too); **phone charges and household-days** are
//! facility energy (IT × PUE), consistent with CO2e; **car km** = CO2e ÷ g/km. Where PUE ≠ 1 the
//! facility kWh is a separately labelled figure ("facility 2.81 kWh at PUE 1.10").
//!
//! Grid intensities come from two tables embedded at build time (`assets/grid/country.csv`,
//! Ember yearly data per country, and `assets/grid/cloud.csv`, per cloud region; see
//! `scripts/gen-grid-assets.py`), or from a number the user sets. Every figure carries its label,
//! source credit and year so the UI and exports can say where it came from. Pure code: no I/O.

use serde::{Deserialize, Serialize};

use crate::table::{Row, Table, non_negative};

/// Joules in one kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

/// Energy for one full smartphone charge, kWh (US EPA Greenhouse Gas Equivalencies Calculator;
/// energy only, to be multiplied by the local grid).
pub const DEFAULT_PHONE_CHARGE_KWH: f64 = 0.019;
/// EU-27 household electricity per dwelling, kWh per year (Odyssee-Mure, ≈2023).
pub const DEFAULT_HOUSEHOLD_KWH_PER_YEAR: f64 = EU_HOUSEHOLD_KWH_PER_YEAR;
/// Average petrol car, EU/UK, gCO2e per km (UK DESNZ conversion factors 2025, tailpipe).
pub const DEFAULT_CAR_G_PER_KM: f64 = 163.0;
/// Power usage effectiveness of a machine you sit at: no facility overhead.
pub const DEFAULT_PUE: f64 = 1.0;

/// EU-27 household electricity per dwelling, kWh per year (Odyssee-Mure, ≈2023).
pub const EU_HOUSEHOLD_KWH_PER_YEAR: f64 = 3600.0;
/// US household electricity, kWh per year (US EIA FAQ, 2023 average per residential customer).
pub const US_HOUSEHOLD_KWH_PER_YEAR: f64 = 10_260.0;
/// UK typical household electricity, kWh per year (Ofgem typical domestic consumption, medium).
pub const UK_HOUSEHOLD_KWH_PER_YEAR: f64 = 2700.0;
/// US passenger vehicle, gCO2e per km (US EPA equivalencies, 3.93e-4 t per mile).
pub const US_CAR_G_PER_KM: f64 = 244.0;

/// Label and source used for a grid intensity given as a number.
pub const CONFIG_LABEL: &str = "config";
/// Source text used for a grid intensity given as a number.
pub const CONFIG_SOURCE: &str = "set in config";
/// Label of the world-average grid intensity.
pub const WORLD_LABEL: &str = "world average";

/// The `WLD` row of `country.csv` (Ember 2024), used only if the embedded table were unreadable;
/// a unit test keeps the two equal.
const WORLD_FALLBACK_G_PER_KWH: f64 = 472.94;
const WORLD_FALLBACK_YEAR: u16 = 2024;
const WORLD_FALLBACK_SOURCE: &str = "Ember Yearly Electricity Data (CC BY 4.0) via thegreenwebfoundation/co2.js data/output/average-intensities.json @b459b5e";

// Embedded deflated (`build.rs`, `table::inflate`): read once, their pages need not stay resident.
const COUNTRY_PACKED: crate::table::Packed = crate::table::packed_asset!("country.csv");
const CLOUD_PACKED: crate::table::Packed = crate::table::packed_asset!("cloud.csv");

const COUNTRY_HEADER: &[&str] = &["iso2", "iso3", "country", "year", "g_co2e_per_kwh", "source"];
const CLOUD_HEADER: &[&str] = &["provider", "region", "location", "g_co2e_per_kwh", "source"];
const PROVIDERS: [&str; 3] = ["gcp", "aws", "azure"];

const ACCEPTED: &str = "use an ISO 3166-1 code such as DE or DEU, a cloud region such as gcp:europe-west4, or a number in gCO2e/kWh";

/// Where a grid intensity figure came from, for display ("DE · Ember 2024") and exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridIntensity {
    pub g_per_kwh: f64,
    /// short label: "DE", "gcp:europe-west4", "world average", "config"
    pub label: String,
    /// full source credit text, e.g. "Ember Yearly Electricity Data 2024 (CC BY 4.0)" or "set in config"
    pub source: String,
    pub year: Option<u16>,
}

/// One entry of the embedded tables, for listings such as `--list-grids`.
#[derive(Debug, Clone, PartialEq)]
pub struct GridEntry {
    /// What to pass to [`resolve_grid`]: "DE", "WLD", "EU", "gcp:europe-west4".
    pub spec: String,
    /// Country name or cloud region location, as in the table: "Germany", "Frankfurt, DE".
    pub name: String,
    pub grid: GridIntensity,
}

/// The world-average grid intensity (`WLD` row: 472.94 ≈ 473 gCO2e/kWh, Ember 2024), labelled
/// "world average". The fallback when no grid is configured.
pub fn world_average() -> GridIntensity {
    match find_country(|r| r.iso3 == "WLD").ok().flatten() {
        Some(row) => row.grid(),
        None => GridIntensity {
            g_per_kwh: WORLD_FALLBACK_G_PER_KWH,
            label: WORLD_LABEL.to_string(),
            source: WORLD_FALLBACK_SOURCE.to_string(),
            year: Some(WORLD_FALLBACK_YEAR),
        },
    }
}

/// spec: a number ("350" or "350.5" → label "config", source "set in config"), an ISO 3166-1 alpha-2 or alpha-3 code
/// case-insensitive ("de", "DEU", "EU"/"EUU", "WLD"), or a cloud region "gcp:europe-west4", "aws:eu-west-1",
/// "azure:westeurope" (provider prefix required; case-insensitive). Err(String) explains what was wrong and what is accepted
/// (e.g. "unknown country code 'XX': use an ISO 3166-1 code such as DE or DEU, a cloud region such as gcp:europe-west4, or a number in gCO2e/kWh").
///
/// Surrounding whitespace is ignored; "world" is accepted as a synonym of "WLD". Numbers must be
/// finite and non-negative.
pub fn resolve_grid(spec: &str) -> Result<GridIntensity, String> {
    let s = spec.trim();
    if s.is_empty() {
        return Err(format!("empty grid intensity: {ACCEPTED}"));
    }
    if let Some((provider, region)) = s.split_once(':') {
        return resolve_cloud(s, provider, region);
    }
    if let Ok(g) = s.parse::<f64>() {
        if !g.is_finite() || g < 0.0 {
            return Err(format!(
                "invalid grid intensity '{s}': a number must be finite and not negative, in gCO2e/kWh (e.g. 350)"
            ));
        }
        return Ok(GridIntensity {
            g_per_kwh: g,
            label: CONFIG_LABEL.to_string(),
            source: CONFIG_SOURCE.to_string(),
            year: None,
        });
    }
    if s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Err(format!(
            "invalid grid intensity '{s}': not a number; give gCO2e/kWh as a plain number such as 350 (no unit)"
        ));
    }
    if s.eq_ignore_ascii_case("world") {
        return Ok(world_average());
    }
    let found = find_country(|r| {
        (s.len() == 2 && !r.iso2.is_empty() && r.iso2.eq_ignore_ascii_case(s))
            || (s.len() == 3 && r.iso3.eq_ignore_ascii_case(s))
    })?;
    match found {
        Some(row) => Ok(row.grid()),
        None => Err(format!("unknown country code '{s}': {ACCEPTED}")),
    }
}

/// Every country (with `WLD` and `EU`) and cloud region in the embedded tables, in table order.
pub fn known_grids() -> Result<Vec<GridEntry>, String> {
    let mut out = Vec::new();
    for row in country_rows()? {
        let spec = if row.iso2.is_empty() {
            row.iso3.clone()
        } else {
            row.iso2.clone()
        };
        out.push(GridEntry {
            spec,
            name: row.country.clone(),
            grid: row.grid(),
        });
    }
    for row in cloud_rows()? {
        let grid = row.grid();
        out.push(GridEntry {
            spec: grid.label.clone(),
            name: row.location.clone(),
            grid,
        });
    }
    Ok(out)
}

/// Household electricity use per year for a locale: "eu" 3600, "us" 10260, "uk" (or "gb") 2700 kWh
/// (case-insensitive). None for anything else.
pub fn household_kwh_for_locale(locale: &str) -> Option<f64> {
    match locale.trim().to_ascii_lowercase().as_str() {
        "eu" => Some(EU_HOUSEHOLD_KWH_PER_YEAR),
        "us" => Some(US_HOUSEHOLD_KWH_PER_YEAR),
        "uk" | "gb" => Some(UK_HOUSEHOLD_KWH_PER_YEAR),
        _ => None,
    }
}

/// Car emissions per km for a locale: "eu", "uk"/"gb" 163 (UK DESNZ 2025 petrol car), "us" 244
/// (US EPA passenger vehicle) gCO2e/km (case-insensitive). None for anything else.
pub fn car_g_per_km_for_locale(locale: &str) -> Option<f64> {
    match locale.trim().to_ascii_lowercase().as_str() {
        "eu" | "uk" | "gb" => Some(DEFAULT_CAR_G_PER_KM),
        "us" => Some(US_CAR_G_PER_KM),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImpactParams {
    pub pue: f64,
    pub grid: GridIntensity,
    pub phone_charge_kwh: f64,
    pub household_kwh_per_year: f64,
    pub car_g_per_km: f64,
    /// Other grids to show the same energy's CO2e on (`[impact] compare`), in the order given.
    pub compare: Vec<GridIntensity>,
    /// The price of electricity (`[impact] price_per_kwh`, `currency`); `None`: no cost shown.
    pub price: Option<Price>,
}

/// A price of electricity: so much `currency` per facility kWh (what the meter counts: IT × PUE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub per_kwh: f64,
    /// As the user wrote it (`EUR`, `USD`, `£`), sanitized and at most 8 characters.
    pub currency: String,
}

/// The same energy's CO2e on another grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridComparison<'a> {
    pub grid: &'a GridIntensity,
    pub co2e_g: f64,
    /// Relative to the configured grid, percent (−60 = 60 % less); `None` when that grid is 0.
    pub delta_pct: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Equivalents {
    pub phone_charges: f64,
    pub household_days: f64,
    pub car_km: f64,
}

impl Default for ImpactParams {
    /// PUE 1.0, world-average grid, EU household, EU/UK petrol car, EPA phone charge.
    fn default() -> Self {
        Self {
            pue: DEFAULT_PUE,
            grid: world_average(),
            phone_charge_kwh: DEFAULT_PHONE_CHARGE_KWH,
            household_kwh_per_year: DEFAULT_HOUSEHOLD_KWH_PER_YEAR,
            car_g_per_km: DEFAULT_CAR_G_PER_KM,
            compare: Vec::new(),
            price: None,
        }
    }
}

impl ImpactParams {
    /// IT energy in kWh (no PUE).
    pub fn kwh(&self, energy_j: f64) -> f64 {
        energy_j / J_PER_KWH
    }

    /// Facility energy in kWh: IT energy × PUE.
    pub fn facility_kwh(&self, energy_j: f64) -> f64 {
        self.kwh(energy_j) * self.pue
    }

    /// `Some(PUE)` when facility energy differs from IT energy (PUE ≠ 1): then a facility figure
    /// is shown beside the IT kWh, and CO2e is labelled as including PUE.
    pub fn facility_differs(&self) -> Option<f64> {
        ((self.pue - 1.0).abs() > 1e-9).then_some(self.pue)
    }

    /// Grams of CO2e: facility kWh × grid gCO2e/kWh (= IT kWh × PUE × grid).
    pub fn co2e_g(&self, energy_j: f64) -> f64 {
        self.facility_kwh(energy_j) * self.grid.g_per_kwh
    }

    /// The same energy's CO2e on each `[impact] compare` grid (facility kWh × that grid), with the
    /// difference to the configured grid.
    pub fn compare(&self, energy_j: f64) -> Vec<GridComparison<'_>> {
        let base = self.grid.g_per_kwh;
        self.compare
            .iter()
            .map(|grid| GridComparison {
                grid,
                co2e_g: self.facility_kwh(energy_j) * grid.g_per_kwh,
                delta_pct: (base > 0.0).then(|| (grid.g_per_kwh - base) / base * 100.0),
            })
            .collect()
    }

    /// What `energy_j` costs at `[impact] price_per_kwh`: facility kWh × price; `None` when no
    /// price is set.
    pub fn cost(&self, energy_j: f64) -> Option<f64> {
        self.price
            .as_ref()
            .map(|p| self.facility_kwh(energy_j) * p.per_kwh)
    }

    /// Everyday equivalents of `energy_j`: phone charges and household-days are facility kWh over
    /// the charge and the household's daily use (yearly / 365); car km is CO2e over g/km.
    /// Assumes the divisors are positive (see [`ImpactParams::validate`]).
    pub fn equivalents(&self, energy_j: f64) -> Equivalents {
        let facility = self.facility_kwh(energy_j);
        Equivalents {
            phone_charges: facility / self.phone_charge_kwh,
            household_days: facility / (self.household_kwh_per_year / 365.0),
            car_km: self.co2e_g(energy_j) / self.car_g_per_km,
        }
    }

    /// Checks the values a user may have overridden: PUE finite and ≥ 1, grid finite and ≥ 0,
    /// phone charge, household use and car g/km finite and > 0. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.pue.is_finite() && self.pue >= 1.0) {
            return Err(format!(
                "invalid PUE {}: must be a finite number of at least 1.0",
                self.pue
            ));
        }
        if !(self.grid.g_per_kwh.is_finite() && self.grid.g_per_kwh >= 0.0) {
            return Err(format!(
                "invalid grid intensity {} gCO2e/kWh: must be finite and not negative",
                self.grid.g_per_kwh
            ));
        }
        for (name, v) in [
            ("phone charge (kWh)", self.phone_charge_kwh),
            ("household use (kWh per year)", self.household_kwh_per_year),
            ("car emissions (gCO2e/km)", self.car_g_per_km),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("invalid {name} {v}: must be a finite number above 0"));
            }
        }
        if let Some(p) = &self.price
            && !(p.per_kwh.is_finite() && p.per_kwh >= 0.0)
        {
            return Err(format!(
                "invalid price per kWh {}: must be a finite number, not negative",
                p.per_kwh
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded tables

#[derive(Debug, Clone, Deserialize)]
struct CountryRow {
    iso2: String,
    iso3: String,
    country: String,
    year: u16,
    #[serde(rename = "g_co2e_per_kwh")]
    g: f64,
    source: String,
}

impl Row for CountryRow {
    fn check(&self) -> Result<(), String> {
        non_negative("g_co2e_per_kwh", self.g)
    }
}

impl CountryRow {
    fn grid(&self) -> GridIntensity {
        let label = if self.iso3 == "WLD" {
            WORLD_LABEL
        } else if self.iso2.is_empty() {
            &self.iso3
        } else {
            &self.iso2
        };
        GridIntensity {
            g_per_kwh: self.g,
            label: label.to_string(),
            source: self.source.clone(),
            year: Some(self.year),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct CloudRow {
    /// Lower case ("gcp", "aws", "azure") once read.
    provider: String,
    region: String,
    location: String,
    #[serde(rename = "g_co2e_per_kwh")]
    g: f64,
    source: String,
}

impl Row for CloudRow {
    fn check(&self) -> Result<(), String> {
        non_negative("g_co2e_per_kwh", self.g)
    }
}

impl CloudRow {
    fn grid(&self) -> GridIntensity {
        GridIntensity {
            g_per_kwh: self.g,
            label: format!("{}:{}", self.provider, self.region),
            source: self.source.clone(),
            year: year_in_source(&self.source),
        }
    }
}

/// The data year when a cloud source states one as "(year 2024, ..." (the GCP rows); the
/// AWS/Azure rows carry none.
fn year_in_source(source: &str) -> Option<u16> {
    let (_, rest) = source.split_once("year ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() == 4 {
        digits.parse().ok()
    } else {
        None
    }
}

fn resolve_cloud(spec: &str, provider: &str, region: &str) -> Result<GridIntensity, String> {
    let provider = provider.trim().to_ascii_lowercase();
    let region = region.trim();
    if !PROVIDERS.contains(&provider.as_str()) {
        return Err(format!(
            "unknown cloud provider '{provider}' in '{spec}': cloud regions are written gcp:REGION, aws:REGION or azure:REGION (e.g. gcp:europe-west4); otherwise {ACCEPTED}"
        ));
    }
    let rows = cloud_rows()?;
    let mut known = Vec::new();
    for row in &rows {
        if row.provider != provider {
            continue;
        }
        if row.region.eq_ignore_ascii_case(region) {
            return Ok(row.grid());
        }
        known.push(row.region.as_str());
    }
    Err(format!(
        "unknown {provider} region '{region}' in '{spec}': known {provider} regions are {}; for a region not listed, use its country's ISO 3166-1 code (e.g. IE or DE) or a number in gCO2e/kWh",
        known.join(", ")
    ))
}

// Each table is read where it is used: a lookup inflates it and goes through its rows, keeping
// the one it wants. A run looks up one or two grids at start; the ~300 rows kept for the whole
// run were 54 KiB of heap (issue 12).
fn country_rows() -> Result<Vec<CountryRow>, String> {
    read_country(&COUNTRY_PACKED.text()?)
}

fn cloud_rows() -> Result<Vec<CloudRow>, String> {
    read_cloud(&CLOUD_PACKED.text()?)
}

/// The first row of `country.csv` that `pred` accepts, without keeping the others.
fn find_country(pred: impl Fn(&CountryRow) -> bool) -> Result<Option<CountryRow>, String> {
    let text = COUNTRY_PACKED.text()?;
    for row in country_table(&text).iter()? {
        let row = row?;
        if pred(&row) {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

fn country_table(text: &str) -> Table<'_> {
    Table {
        name: "country.csv",
        text,
        header: COUNTRY_HEADER,
        comments: false,
    }
}

/// The rows of a `country.csv` text: the header as in [`COUNTRY_HEADER`], a year that fits a u16,
/// a finite, non-negative g/kWh; the source quoted where it holds commas.
fn read_country(text: &str) -> Result<Vec<CountryRow>, String> {
    country_table(text).rows()
}

/// The rows of a `cloud.csv` text (header [`CLOUD_HEADER`], finite, non-negative g/kWh), with
/// the provider in lower case.
fn read_cloud(text: &str) -> Result<Vec<CloudRow>, String> {
    let mut rows: Vec<CloudRow> = Table {
        name: "cloud.csv",
        text,
        header: CLOUD_HEADER,
        comments: false,
    }
    .rows()?;
    for r in &mut rows {
        r.provider.make_ascii_lowercase();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
