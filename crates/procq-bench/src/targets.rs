//! The targets of the "Performance" issue, each judged met or not from
//! the figures of one run (same-run ratios, never absolute numbers).

use crate::case::{peer_bound, BATCH, BOUND, LOAD_PROCESSES};
use crate::item::Item;
use crate::model::{Latency, Report, Target, TargetResult, Throughput};
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
    // "The fastest in every column": iceoryx2 copies each sample out
    // into an owned value, as procq's `get` does; procq runs with the
    // peer's bound (16 items at 1 MiB), the same bytes in flight.
    for item in [Item::U64, Item::Bytes(100), mib] {
        ratio(
            format!("1P/1C {} bounded: procq / iceoryx2 copy-out", item.label()),
            tp(System::Procq, 1, item, peer_bound(item), 1),
            peer(System::Iceoryx2, item),
            false,
            1.0,
        );
    }
    ratio(
        "1P/1C 1 MiB bounded, zero-copy: procq put_with/get_with / iceoryx2 zero-copy".into(),
        peer(System::ProcqZeroCopy, mib),
        peer(System::Iceoryx2ZeroCopy, mib),
        false,
        0.8,
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
    // Issue #15: iceoryx2's busy-polling class, an absolute figure.
    let idle = lat(System::Procq, false);
    let mut absolute = ratio_target(
        "latency p50 idle: procq (absolute)".into(),
        idle.map(|l| l.p50_ns as f64 / 1e3),
        "<=",
        1.0,
        match idle {
            Some(l) => format!("p50 {}{}", ns(l.p50_ns), cpu_note(l)),
            None => "not measured in this run".into(),
        },
    );
    absolute.unit = "µs".into();
    out.push(absolute);
    // Under load, no worse than a socket: at the median and at the tail.
    let (loaded, sock) = (lat(System::Procq, true), lat(System::Socket, true));
    for (label, pick) in [
        ("p50", (|l: &Latency| l.p50_ns) as fn(&Latency) -> u64),
        ("p99", |l: &Latency| l.p99_ns),
    ] {
        let (measured, detail) = match (loaded, sock) {
            (Some(a), Some(b)) => (
                Some(pick(a) as f64 / (pick(b) as f64).max(1.0)),
                format!(
                    "{label} {} vs socket {}{}",
                    ns(pick(a)),
                    ns(pick(b)),
                    cpu_note(a)
                ),
            ),
            _ => (None, "not measured in this run".into()),
        };
        out.push(ratio_target(
            format!("latency {label}, {LOAD_PROCESSES} busy processes: procq / socket"),
            measured,
            "<=",
            1.0,
            detail,
        ));
    }
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

/// `, CPU 1.2 µs/round trip (0.80 cores)` where the case measured it.
fn cpu_note(l: &Latency) -> String {
    match (l.cpu_ns_per_round_trip, l.cpu_cores) {
        (Some(c), Some(k)) => format!(", CPU {}/round trip ({k:.2} cores)", ns(c)),
        _ => String::new(),
    }
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
        unit: String::new(),
        result,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Flow;
    use crate::model::CpuUse;
    use crate::stats::LatencySummary;

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

    fn lat(system: System, loaded: bool, p50_ns: u64, p99_ns: u64) -> Latency {
        let summary = LatencySummary {
            p50_ns,
            p99_ns,
            p999_ns: p99_ns,
            max_ns: p99_ns,
        };
        let cpu = CpuUse {
            ns_per_round_trip: 1500.0,
            cores: 1.5,
        };
        Latency::new("x".into(), system, loaded, 10, &[summary], &[Some(cpu)])
    }

    #[test]
    fn latency_targets_judge_the_absolute_p50_and_the_loaded_socket() {
        let mut r = Report::new(true, 1);
        r.latency.push(lat(System::Procq, false, 900, 5_000));
        r.latency.push(lat(System::Socket, false, 10_000, 20_000));
        r.latency.push(lat(System::Procq, true, 30_000, 900_000));
        r.latency.push(lat(System::Socket, true, 40_000, 800_000));
        r.targets = compute(&r);
        let get = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap();
        let idle = get("latency p50 idle: procq (absolute)");
        assert_eq!(idle.result, TargetResult::Met);
        assert!((idle.measured.unwrap() - 0.9).abs() < 1e-9);
        assert_eq!(idle.unit, "µs");
        assert!(
            idle.detail.contains("CPU 1.5 µs/round trip (1.50 cores)"),
            "{}",
            idle.detail
        );
        let p50 = get("latency p50, 4 busy processes: procq / socket");
        assert_eq!(p50.result, TargetResult::Met);
        assert!((p50.measured.unwrap() - 0.75).abs() < 1e-9);
        let p99 = get("latency p99, 4 busy processes: procq / socket");
        assert_eq!(p99.result, TargetResult::NotMet);
        assert!((p99.measured.unwrap() - 1.125).abs() < 1e-9);
        let table = r.to_table_with_targets();
        assert!(
            table.contains("0.90 µs") && table.contains("<= 1 µs"),
            "{table}"
        );
        // The latency table shows the CPU the ping-pong burned.
        assert!(
            table.contains("CPU/round trip") && table.contains("1.50"),
            "{table}"
        );

        // Without the socket under load, the loaded targets are n/a, not met.
        r.latency.pop();
        r.targets = compute(&r);
        let p99 = r
            .targets
            .iter()
            .find(|t| t.name == "latency p99, 4 busy processes: procq / socket")
            .unwrap();
        assert_eq!(p99.result, TargetResult::Missing);
    }

    #[test]
    fn zero_copy_target_compares_loans_with_iceoryx2_in_place() {
        let mib = Item::Bytes(1 << 20);
        let mut r = Report::new(true, 1);
        r.throughput
            .push(tp(System::ProcqZeroCopy, 1, mib, 16, 1, 9_000.0));
        // Compared at the peer's bound (16 at 1 MiB), not at maxsize 1024.
        r.throughput
            .push(tp(System::Procq, 1, mib, BOUND, 1, 6_000.0));
        r.throughput.push(tp(System::Procq, 1, mib, 16, 1, 4_000.0));
        r.throughput
            .push(tp(System::Iceoryx2ZeroCopy, 1, mib, 16, 1, 10_000.0));
        r.throughput
            .push(tp(System::Iceoryx2, 1, mib, 16, 1, 5_000.0));
        r.throughput
            .push(tp(System::Iceoryx2, 1, Item::U64, BOUND, 1, 1e6));
        r.throughput
            .push(tp(System::Procq, 1, Item::U64, BOUND, 1, 4e6));
        r.targets = compute(&r);
        let get = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap();
        let zc =
            get("1P/1C 1 MiB bounded, zero-copy: procq put_with/get_with / iceoryx2 zero-copy");
        assert_eq!(zc.result, TargetResult::Met);
        assert!((zc.measured.unwrap() - 0.9).abs() < 1e-9);
        let copy = get("1P/1C 1 MiB bounded: procq / iceoryx2 copy-out");
        assert_eq!(copy.result, TargetResult::NotMet);
        assert!((copy.measured.unwrap() - 0.8).abs() < 1e-9);
        let small = get("1P/1C 8 B bounded: procq / iceoryx2 copy-out");
        assert_eq!(small.result, TargetResult::Met);
        assert_eq!(
            get("1P/1C 100 B bounded: procq / iceoryx2 copy-out").result,
            TargetResult::Missing
        );
    }
}
