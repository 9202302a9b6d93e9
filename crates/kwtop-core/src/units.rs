//! Display formatting: picks the unit (mW/W/kW, J/Wh/kWh/MWh, g/kg/t, MiB/GiB) for a raw SI value.
//! Internally everything stays joules, watts, grams and bytes.

/// `612 W`, `1.2 kW`, `850 mW`.
pub fn power(w: f64) -> String {
    if !w.is_finite() {
        return "N/A".into();
    }
    let a = w.abs();
    if a >= 1000.0 {
        format!("{:.1} kW", w / 1000.0)
    } else if a >= 10.0 || a == 0.0 {
        format!("{w:.0} W")
    } else if a >= 1.0 {
        format!("{w:.1} W")
    } else {
        format!("{:.0} mW", w * 1000.0)
    }
}

/// `12 J`, `3.4 Wh`, `1.93 kWh`, `2.1 MWh`.
pub fn energy(j: f64) -> String {
    if !j.is_finite() {
        return "N/A".into();
    }
    let wh = j / 3600.0;
    let a = wh.abs();
    if a >= 1e6 {
        format!("{:.2} MWh", wh / 1e6)
    } else if a >= 1000.0 {
        format!("{:.2} kWh", wh / 1000.0)
    } else if a >= 1.0 {
        format!("{wh:.1} Wh")
    } else {
        format!("{j:.0} J")
    }
}

/// `733 g`, `1.24 kg`, `3.1 t`.
pub fn mass_g(g: f64) -> String {
    if !g.is_finite() {
        return "N/A".into();
    }
    let a = g.abs();
    if a >= 1e6 {
        format!("{:.1} t", g / 1e6)
    } else if a >= 1000.0 {
        format!("{:.2} kg", g / 1000.0)
    } else if a >= 10.0 {
        format!("{g:.0} g")
    } else {
        format!("{g:.1} g")
    }
}

/// An amount of money: two decimals from 1 on, three significant digits below (`0.00412 EUR`), so
/// the cost of a short job is never shown as `0.00`.
pub fn money(amount: f64, currency: &str) -> String {
    let a = amount.abs();
    let text = if a >= 1.0 || a == 0.0 {
        format!("{amount:.2}")
    } else {
        let digits = (2 - a.log10().floor() as i32).clamp(2, 12) as usize;
        format!("{amount:.digits$}")
    };
    format!("{text} {currency}")
}

/// `61.0G`, `512M`.
pub fn bytes(b: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let f = b as f64;
    if f >= GIB {
        format!("{:.1}G", f / GIB)
    } else {
        format!("{:.0}M", f / MIB)
    }
}

/// `03:12:45`, or `2d 03:12` past a day.
pub fn clock(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    let (d, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

/// `42m`, `3h`, `2d` — short age for idle streaks.
pub fn short_age(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3600 {
        format!("{}h", s / 3600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_units() {
        assert_eq!(power(612.4), "612 W");
        assert_eq!(power(1234.0), "1.2 kW");
        assert_eq!(power(0.85), "850 mW");
        assert_eq!(power(f64::NAN), "N/A");
        assert_eq!(energy(12.0), "12 J");
        assert_eq!(energy(3600.0 * 1930.0), "1.93 kWh");
        assert_eq!(mass_g(733.2), "733 g");
        assert_eq!(mass_g(1240.0), "1.24 kg");
        assert_eq!(bytes(61 << 30), "61.0G");
        assert_eq!(clock(3.0 * 3600.0 + 12.0 * 60.0 + 45.0), "03:12:45");
        assert_eq!(short_age(42.0 * 60.0), "42m");
    }

    #[test]
    fn money_keeps_small_amounts_readable() {
        assert_eq!(money(12.345, "EUR"), "12.35 EUR");
        assert_eq!(money(0.0, "EUR"), "0.00 EUR");
        assert_eq!(money(0.004123, "USD"), "0.00412 USD");
        assert_eq!(money(0.25, "£"), "0.250 £");
    }
}
