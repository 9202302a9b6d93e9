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
        let digits = (2 - decimal_exponent(a).unwrap_or(0)).clamp(2, 12) as usize;
        format!("{amount:.digits$}")
    };
    format!("{text} {currency}")
}

/// 10^`k` as the nearest `f64`: the value the literal `1e{k}` has.
///
/// This and [`decimal_exponent`] stand in for `f64::powf` and `f64::log10`: those are the only libm
/// functions kwtop would call, and without them the linker leaves libm out of the binary altogether
/// (`--as-needed`). Loading libm cost ~0.4 MB of resident memory (its start-up code and the pages the
/// kernel maps around them), a tenth of the whole monitor. `clippy.toml` keeps libm's functions out.
pub fn pow10(k: i32) -> f64 {
    // Every power of ten up to 1e22 is exact in an f64, and so is a quotient of two of them correctly
    // rounded: the first 45 need no parsing.
    const EXACT: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
        1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    match k {
        0..=22 => EXACT[k as usize],
        -22..=-1 => 1.0 / EXACT[k.unsigned_abs() as usize],
        309.. => f64::INFINITY,
        ..=-344 => 0.0,
        _ => {
            // Core's float parser rounds correctly: the literal's own value, without allocating.
            use std::io::Write;
            let mut buf = [0u8; 8];
            let mut rest = &mut buf[..];
            let _ = write!(rest, "1e{k}");
            let len = 8 - rest.len();
            std::str::from_utf8(&buf[..len])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        }
    }
}

/// The decimal exponent of a finite, non-zero `x`: the `k` with `pow10(k) <= |x| < pow10(k + 1)`,
/// powers of ten taken as the `f64`s their literals are (so `1e23`, stored just below 10²³, gives 23,
/// as it is written). `floor(log10(x))` rounds and can be one off just below a power of ten. None
/// for zero, infinities and NaN.
pub fn decimal_exponent(x: f64) -> Option<i32> {
    let a = x.abs();
    if a == 0.0 || !a.is_finite() {
        return None;
    }
    // The binary exponent times log10(2) is within one of the answer (subnormals: within 16).
    let e2 = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let mut k = (f64::from(e2) * std::f64::consts::LOG10_2).floor() as i32;
    while pow10(k) > a {
        k -= 1;
    }
    while pow10(k + 1) <= a {
        k += 1;
    }
    Some(k)
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

    #[test]
    fn pow10_is_the_literal() {
        for k in -400..=400 {
            let literal: f64 = format!("1e{k}").parse().unwrap();
            assert_eq!(pow10(k).to_bits(), literal.to_bits(), "1e{k}");
        }
    }

    #[test]
    fn decimal_exponent_brackets_the_value() {
        assert_eq!(decimal_exponent(1.0), Some(0));
        assert_eq!(decimal_exponent(999.999), Some(2));
        assert_eq!(decimal_exponent(1000.0), Some(3));
        assert_eq!(decimal_exponent(-0.004123), Some(-3));
        assert_eq!(decimal_exponent(f64::MAX), Some(308));
        assert_eq!(decimal_exponent(f64::MIN_POSITIVE), Some(-308));
        assert_eq!(decimal_exponent(5e-324), Some(-324));
        for bad in [0.0, -0.0, f64::INFINITY, f64::NAN] {
            assert_eq!(decimal_exponent(bad), None);
        }
    }

    proptest::proptest! {
        #[test]
        fn decimal_exponent_matches_log10(bits in 1u64..0x7ff0_0000_0000_0000) {
            let x = f64::from_bits(bits);
            let k = decimal_exponent(x).unwrap();
            proptest::prop_assert!(pow10(k) <= x && x < pow10(k + 1));
            // libm agrees except within a rounding of a power of ten.
            #[allow(clippy::disallowed_methods)]
            let libm = x.log10().floor() as i32;
            if libm != k {
                let p = pow10(libm.max(k));
                proptest::prop_assert!(((x - p) / p).abs() < 1e-15, "{x:e}: {k} vs {libm}");
            }
        }
    }
}
