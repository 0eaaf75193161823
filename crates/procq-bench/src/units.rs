//! Figures as people read them: SI rates, binary byte counts, durations.

/// `1.23 M`, `456 k`: three significant digits, SI prefix.
pub(crate) fn si(v: f64) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, " ")
    };
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{prefix}").trim_end().to_owned()
}

/// A byte rate in decimal units (`6.30 GB/s`).
pub(crate) fn bytes_rate(v: f64) -> String {
    let s = si(v);
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s} B/s")
    } else {
        format!("{s}B/s")
    }
}

/// A byte count in binary units (`1.5 MiB`).
pub(crate) fn bytes(v: u64) -> String {
    let v = v as f64;
    if v >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", v / (1u64 << 30) as f64)
    } else if v >= (1 << 20) as f64 {
        format!("{:.1} MiB", v / (1 << 20) as f64)
    } else if v >= 1024.0 {
        format!("{:.0} KiB", v / 1024.0)
    } else {
        format!("{v} B")
    }
}

/// A duration in ns, µs or ms.
pub(crate) fn ns(v: u64) -> String {
    let f = v as f64;
    if f >= 1e6 {
        format!("{:.2} ms", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} µs", f / 1e3)
    } else {
        format!("{v} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(si(2_310_000.0), "2.31 M");
        assert_eq!(si(845_000.0), "845 k");
        assert_eq!(si(12.0), "12.0");
        assert_eq!(bytes_rate(6.3e9), "6.30 GB/s");
        assert_eq!(bytes_rate(500.0), "500 B/s");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(ns(13_700), "13.7 µs");
        assert_eq!(ns(850), "850 ns");
    }
}
