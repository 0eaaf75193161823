//! The benchmark binary end to end: real worker processes, real queues, a
//! real report, on a small filtered subset so that it takes well under a
//! second.

use std::path::PathBuf;
use std::process::{Command, Output};

use procq_bench::{Report, System, TargetResult};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procq-bench"))
        .args(args)
        .output()
        .expect("running procq-bench")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("procq-bench-test-{}-{name}", std::process::id()))
}

/// A `--quick` run with `args` and a JSON report: checks that it
/// succeeded, and returns its table and its report (the file removed).
fn quick_run(tag: &str, args: &[&str]) -> (String, Report) {
    let json = scratch(tag);
    let mut all = vec!["--quick", "--json-out", json.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = bench(&all);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    (table, report)
}

#[test]
fn quick_filtered_run_writes_table_json_and_plot() {
    let svg = scratch("r.svg");
    let (table, report) = quick_run(
        "r.json",
        &["--filter", "1p1c/8B", "--plot", svg.to_str().unwrap()],
    );
    assert_eq!(report.mode, "quick");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.leaked_segments.is_empty());
    // Every system ran, in one process or several, and moved every item.
    for system in [
        System::Procq,
        System::Socket,
        System::IpcChannel,
        System::Crossbeam,
        System::Memcpy,
        // (ipmpsc-bytes has no u64 case: see peers_run_side_by_side_with_procq.)
        #[cfg(feature = "ipmpsc")]
        System::Ipmpsc,
    ] {
        let t = report
            .throughput
            .iter()
            .find(|t| t.system == system && t.batch == 1)
            .unwrap_or_else(|| panic!("no {system} case"));
        assert!(t.items > 0 && t.items_per_sec > 0.0, "{t:?}");
        assert!(table.contains(&system.to_string()));
    }
    assert!(report
        .throughput
        .iter()
        .any(|t| t.system == System::Procq && t.batch > 1));
    assert!(report.latency.is_empty() && report.memory.is_none());
    // Throughput targets are judged, the others lack their cases.
    let result = |name: &str| {
        report
            .targets
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name}"))
            .result
    };
    assert_ne!(
        result("1P/1C 8 B unbounded: procq / socket"),
        TargetResult::Missing
    );
    assert_eq!(result("latency p50: procq / socket"), TargetResult::Missing);
    assert!(table.contains("No queue segments left"));
    // The targets are in the JSON; the table shows them with --targets.
    assert!(!table.contains("Targets"));
    let plot = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("items/s"));
}

#[test]
fn latency_and_memory_cases_run_and_clean_up() {
    let (table, report) = quick_run("latency.json", &["--filter", "procq/idle", "--targets"]);
    assert!(table.contains("Round-trip latency"), "{table}");
    // Both sides' CPU time is measured: some, and no more than 2 processes
    // can burn in the run's wall time (generous: clocks tick coarsely).
    let l = report.find_latency(System::Procq, false).unwrap();
    let cpu = l.cpu_ns_per_round_trip.expect("CPU per round trip");
    let cores = l.cpu_cores.expect("cores busy");
    assert!(cpu > 0 && cores > 0.0 && cores < 4.0, "{l:?}");
    // The absolute p50 target is judged (met or not: it is a measurement),
    // the loaded ones lack their cases.
    let target = |name: &str| report.targets.iter().find(|t| t.name == name).unwrap();
    let idle = target("latency p50 idle: procq (absolute)");
    assert_ne!(idle.result, TargetResult::Missing);
    assert_eq!(idle.unit, "µs");
    assert!(
        table.contains("latency p50 idle: procq (absolute)"),
        "{table}"
    );
    assert_eq!(
        target("latency p99, 4 busy processes: procq / socket").result,
        TargetResult::Missing
    );
    let out = bench(&["--quick", "--filter", "memory"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("queue resident"), "{table}");
}

/// The zero-copy loans (`RawQueue::put_with` / `get_with`) move every item
/// between processes and are their own rows.
#[test]
fn zero_copy_loans_run_between_processes() {
    let (table, report) = quick_run("loans.json", &["--filter", "procq-zero-copy"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.leaked_segments.is_empty());
    let sizes: Vec<u64> = report
        .throughput
        .iter()
        .filter(|t| t.system == System::ProcqZeroCopy)
        .inspect(|t| assert!(t.items > 0 && t.items_per_sec > 0.0, "{t:?}"))
        .map(|t| t.item_bytes)
        .collect();
    assert_eq!(sizes, [65536, 1 << 20]);
    assert!(table.contains("put_with/get_with, in place"), "{table}");
}

#[test]
fn bad_usage_fails_with_status_2() {
    assert_eq!(bench(&["--filter", "no-such-case"]).status.code(), Some(2));
    assert_eq!(bench(&["--runs", "zero"]).status.code(), Some(2));
    assert_eq!(bench(&["--bogus"]).status.code(), Some(2));
    assert_eq!(bench(&["--json", "r.json"]).status.code(), Some(2));
    let list = bench(&["--list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("memory/procq"));
}

#[test]
fn a_worker_with_a_bad_role_fails_cleanly() {
    let out = bench(&[procq_bench::WORKER_ARG, "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad role"));
    assert!(out.stdout.is_empty());
}

/// The shared-memory peers run on the same items and the headline table
/// sets procq beside them with same-run ratios.
#[cfg(feature = "ipmpsc")]
#[test]
fn peers_run_side_by_side_with_procq() {
    let (table, report) = quick_run("peers.json", &["--filter", "1p1c/100B"]);
    for system in [System::Ipmpsc, System::IpmpscBytes] {
        let t = report
            .throughput
            .iter()
            .find(|t| t.system == system)
            .unwrap_or_else(|| panic!("no {system} case"));
        assert!(
            t.items > 0 && t.items_per_sec > 0.0 && t.maxsize > 0,
            "{t:?}"
        );
    }
    let line = table
        .lines()
        .find(|l| l.starts_with("100 B items/s"))
        .unwrap_or_else(|| panic!("no side-by-side row:\n{table}"));
    assert!(line.matches('x').count() >= 2, "ratios: {line}");
    assert!(table.contains("Side by side"), "{table}");
}
