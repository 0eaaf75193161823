//! Runs the article's example programs (`examples/*.rs`, built by
//! `cargo test`) and checks what they print.
//!
//! The binaries are found next to this test's own executable:
//! `target/<profile>/deps/examples-<hash>` → `target/<profile>/examples/`.
//! `cargo test` builds the examples before running tests; with a target
//! filter such as `--test examples` it does not, so build them first
//! (`cargo build -p procq --examples`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

/// Seconds after which a hanging example is killed (coreutils `timeout`).
const LIMIT_SECS: &str = "60";

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p procq` (which builds the examples) \
         or `cargo build -p procq --examples` first",
        path.display()
    );
    path
}

/// Runs an example under a time limit; returns its stdout lines.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["-s", "KILL", LIMIT_SECS])
        .arg(example(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the example under timeout(1)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

fn position(lines: &[String], wanted: &str) -> usize {
    lines
        .iter()
        .position(|l| l == wanted)
        .unwrap_or_else(|| panic!("no line {wanted:?} in {lines:#?}"))
}

/// The `<pid>` of `[<pid>] <rest>` lines.
fn pids_of(lines: &[String], rest: &str) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.strip_suffix(rest))
        .filter_map(|l| l.strip_prefix('[')?.strip_suffix("] ")?.parse().ok())
        .collect()
}

fn check_token_counter(args: &[&str], processes: usize, total: u64) {
    let lines = run("token_counter", args, &[]);
    assert_eq!(lines[0], "--- Starting process ---", "{lines:#?}");
    let pids = pids_of(&lines, "Processing complete");
    assert_eq!(pids.len(), processes, "{lines:#?}");
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), processes);
    let done = position(&lines, "--- All processes complete ---");
    assert_eq!(lines[done + 1], format!("Final counter value: {total}"));
    assert_eq!(
        lines[done + 2],
        format!(">> Success: Value reached {total}.")
    );
    assert_eq!(lines.len(), done + 3, "{lines:#?}");
}

#[test]
fn token_counter_reaches_100_as_in_the_article() {
    check_token_counter(&[], 2, 100);
}

#[test]
fn token_counter_with_more_processes() {
    check_token_counter(&["5", "6"], 5, 30);
}

#[test]
fn producer_consumer_processes_every_job_in_order() {
    let lines = run("producer_consumer", &[], &[("PROCQ_EXAMPLE_SLEEP_MS", "5")]);
    let produced: Vec<usize> = (0..5)
        .map(|i| position(&lines, &format!("[Prod] Generating: Job-{i}")))
        .collect();
    let consumed: Vec<usize> = (0..5)
        .map(|i| position(&lines, &format!("[Cons] Processing: Job-{i}")))
        .collect();
    assert!(produced.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    assert!(consumed.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    // A job is processed only after it was generated.
    assert!(
        produced.iter().zip(&consumed).all(|(p, c)| p < c),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("started in process"))
            .count(),
        2
    );
    assert_eq!(lines.len(), 12, "{lines:#?}");
}

#[test]
fn timeouts_and_nowait_calls_fail_as_documented() {
    let lines = run("timeouts_nowait", &[], &[]);
    // The example prints the wait to a tenth of a second: never early, and
    // on a loaded machine it may be late (0.6 s printed once at load 13).
    let waited: f64 = lines[0]
        .strip_prefix("get_timeout(0.5 s) -> Error::Empty after ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!((0.5..5.0).contains(&waited), "{lines:#?}");
    for wanted in [
        "qsize() = 2, full() = true",
        "put_nowait(\"c\") -> Error::Full",
        "get_nowait() -> \"a\"",
        "get_nowait() -> \"b\"",
        "get_nowait() -> Error::Empty",
    ] {
        position(&lines, wanted);
    }
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("get_timeout(3 s) -> \"late item\" from process "),
        "{lines:#?}"
    );
}

#[test]
fn joinable_join_waits_for_every_task() {
    let lines = run("joinable", &["12"], &[]);
    let all_done = position(&lines, "--- All 12 tasks are done ---");
    // join() returned only after every task was worked on.
    for i in 0..12 {
        let line = lines
            .iter()
            .position(|l| l.ends_with(&format!("] Working on Task-{i}")))
            .unwrap_or_else(|| panic!("Task-{i} never worked on: {lines:#?}"));
        assert!(line < all_done, "{lines:#?}");
    }
    let stops = lines
        .iter()
        .filter(|l| l.contains("] Stopping after "))
        .count();
    assert_eq!(stops, 2, "{lines:#?}");
    assert_eq!(
        lines.last().unwrap(),
        "--- Workers stopped (12 tasks handled) ---"
    );
}
