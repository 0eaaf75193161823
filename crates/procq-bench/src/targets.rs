//! The targets of the "Performance" issue, each judged met or not from
//! the figures of one run (same-run ratios, never absolute numbers).

use crate::case::{BATCH, BOUND, LOAD_PROCESSES};
use crate::item::Item;
use crate::model::{Report, Target, TargetResult, Throughput};
use crate::system::System;
use crate::units::{bytes, bytes_rate, ns, si};

/// Every target, judged from what `report` measured (`Missing` where a
/// case it needs did not run).
pub(crate) fn compute<'a>(report: &'a Report) -> Vec<Target> {
    let mut out = Vec::new();
    let tp = |s, p, item, m, b| report.find_throughput(s, p, item, m, b);
    let mut ratio =
        |name: String, a: Option<&Throughput>, b: Option<&Throughput>, bytes: bool, need: f64| {
            let (measured, detail) = match (a, b) {
                (Some(a), Some(b)) => {
                    let (x, y) = if bytes {
                        (a.bytes_per_sec, b.bytes_per_sec)
                    } else {
                        (a.items_per_sec, b.items_per_sec)
                    };
                    let fmt = |v| {
                        if bytes {
                            bytes_rate(v)
                        } else {
                            si(v) + " items/s"
                        }
                    };
                    (Some(x / y.max(1e-9)), format!("{} vs {}", fmt(x), fmt(y)))
                }
                _ => (None, "not measured in this run".into()),
            };
            out.push(ratio_target(name, measured, ">=", need, detail));
        };
    for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
        ratio(
            format!("1P/1C 8 B {label}: procq / socket"),
            tp(System::Procq, 1, Item::U64, m, 1),
            tp(System::Socket, 1, Item::U64, 0, 1),
            false,
            10.0,
        );
        ratio(
            format!("1P/1C 8 B {label}: procq / crossbeam (threads)"),
            tp(System::Procq, 1, Item::U64, m, 1),
            tp(System::Crossbeam, 1, Item::U64, m, 1),
            false,
            0.5,
        );
    }
    let mib = Item::Bytes(1 << 20);
    for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
        ratio(
            format!("1P/1C 1 MiB {label}: procq / memcpy bandwidth"),
            tp(System::Procq, 1, mib, m, 1),
            tp(System::Memcpy, 1, mib, 0, 1),
            true,
            0.5,
        );
        ratio(
            format!("1P/1C 1 MiB {label}: procq / socket"),
            tp(System::Procq, 1, mib, m, 1),
            tp(System::Socket, 1, mib, 0, 1),
            true,
            2.0,
        );
    }
    for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
        ratio(
            format!("8 B {label}: put_many/get_many({BATCH}) / put/get"),
            tp(System::Procq, 1, Item::U64, m, BATCH),
            tp(System::Procq, 1, Item::U64, m, 1),
            false,
            3.0,
        );
    }
    for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
        ratio(
            format!("8 B {label}: procq 4P/4C total / 1P/1C"),
            tp(System::Procq, 4, Item::U64, m, 1),
            tp(System::Procq, 1, Item::U64, m, 1),
            false,
            0.5,
        );
    }
    // Issue #15: side by side with the shared-memory peers (same run).
    let peer = |s, item| report.find_flow(s, (1, 1), item, None, 1);
    let faster = |a: Option<&'a Throughput>, b: Option<&'a Throughput>| match (a, b) {
        (Some(a), Some(b)) if b.items_per_sec > a.items_per_sec => Some(b),
        (a, b) => a.or(b),
    };
    for item in [Item::U64, Item::Bytes(100)] {
        ratio(
            format!(
                "1P/1C {} bounded: procq / ipmpsc (faster variant)",
                item.label()
            ),
            tp(System::Procq, 1, item, BOUND, 1),
            faster(peer(System::Ipmpsc, item), peer(System::IpmpscBytes, item)),
            false,
            1.0,
        );
    }
    ratio(
        "1P/1C 1 MiB bounded: procq / iceoryx2 copy-out".into(),
        tp(System::Procq, 1, mib, BOUND, 1),
        peer(System::Iceoryx2, mib),
        false,
        1.0,
    );
    for item in [Item::Bytes(65536), mib] {
        ratio(
            format!("{} bounded: procq 4P/4C total / 1P/1C", item.label()),
            tp(System::Procq, 4, item, BOUND, 1),
            tp(System::Procq, 1, item, BOUND, 1),
            false,
            0.7,
        );
    }
    let lat = |s, l| report.find_latency(s, l);
    let (measured, detail) = match (lat(System::Procq, false), lat(System::Socket, false)) {
        (Some(a), Some(b)) => (
            Some(a.p50_ns as f64 / (b.p50_ns as f64).max(1.0)),
            format!("p50 {} vs {}", ns(a.p50_ns), ns(b.p50_ns)),
        ),
        _ => (None, "not measured in this run".into()),
    };
    out.push(ratio_target(
        "latency p50: procq / socket".into(),
        measured,
        "<=",
        0.2,
        detail,
    ));
    let loaded = lat(System::Procq, true);
    let sock = lat(System::Socket, true);
    out.push(Target {
        name: format!("latency p99, {LOAD_PROCESSES} busy processes: procq / socket"),
        measured: match (loaded, sock) {
            (Some(a), Some(b)) => Some(a.p99_ns as f64 / (b.p99_ns as f64).max(1.0)),
            _ => None,
        },
        comparison: String::new(),
        required: None,
        result: if loaded.is_some() {
            TargetResult::Reported
        } else {
            TargetResult::Missing
        },
        detail: match (loaded, sock) {
            (Some(a), Some(b)) => format!(
                "p99 {} (p99.9 {}) vs socket {}",
                ns(a.p99_ns),
                ns(a.p999_ns),
                ns(b.p99_ns)
            ),
            (Some(a), None) => format!("p99 {} (p99.9 {})", ns(a.p99_ns), ns(a.p999_ns)),
            _ => "not measured in this run".into(),
        },
    });
    let (measured, detail) = match &report.memory {
        Some(m) => (
            Some(m.drained_resident_bytes as f64 / (m.idle_resident_bytes as f64).max(1.0)),
            format!(
                "{} after {} fill+drain vs {} idle",
                bytes(m.drained_resident_bytes),
                bytes(m.fill_bytes),
                bytes(m.idle_resident_bytes)
            ),
        ),
        None => (None, "not measured in this run".into()),
    };
    out.push(ratio_target(
        "memory after fill+drain / idle".into(),
        measured,
        "<=",
        2.0,
        detail,
    ));
    out
}

fn ratio_target(
    name: String,
    measured: Option<f64>,
    comparison: &str,
    required: f64,
    detail: String,
) -> Target {
    let result = match measured {
        None => TargetResult::Missing,
        Some(v) if comparison == "<=" && v <= required => TargetResult::Met,
        Some(v) if comparison == ">=" && v >= required => TargetResult::Met,
        Some(_) => TargetResult::NotMet,
    };
    Target {
        name,
        measured,
        comparison: comparison.into(),
        required: Some(required),
        result,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Flow;

    fn tp(
        system: System,
        p: usize,
        item: Item,
        maxsize: usize,
        batch: usize,
        rate: f64,
    ) -> Throughput {
        let f = Flow {
            system,
            producers: p,
            consumers: p,
            item,
            maxsize,
            batch,
        };
        Throughput::new("x".into(), f, rate as u64, &[1.0])
    }

    #[test]
    fn targets_compare_the_right_cases() {
        let mut r = Report::new(true, 1);
        r.throughput
            .push(tp(System::Procq, 1, Item::U64, 0, 1, 12e6));
        r.throughput
            .push(tp(System::Socket, 1, Item::U64, 0, 1, 1e6));
        r.throughput
            .push(tp(System::Procq, 4, Item::U64, 0, 1, 3e6));
        r.targets = compute(&r);
        let get = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap();
        let sock = get("1P/1C 8 B unbounded: procq / socket");
        assert_eq!(sock.result, TargetResult::Met);
        assert!((sock.measured.unwrap() - 12.0).abs() < 1e-9);
        assert_eq!(
            get("8 B unbounded: procq 4P/4C total / 1P/1C").result,
            TargetResult::NotMet
        );
        assert_eq!(
            get("1P/1C 8 B bounded: procq / socket").result,
            TargetResult::Missing
        );
        let table = r.to_table_with_targets();
        assert!(
            table.contains("NOT MET") && table.contains("12.00x"),
            "{table}"
        );
    }
}
