//! The real `procq` binary against real queues and processes.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn procq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(args)
        .output()
        .expect("run procq")
}

fn procq_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run procq");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unique(tag: &str) -> String {
    format!("cli-{tag}-{}", std::process::id())
}

/// Removes a persistent test queue however the test ends.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = procq::remove(&self.0);
    }
}

#[test]
fn create_put_get_round_trip_and_exit_codes() {
    let name = unique("roundtrip");
    let _c = Cleanup(name.clone());
    assert!(procq(&["create", &name, "--maxsize", "10"])
        .status
        .success());
    let out = procq(&["create", &name]);
    assert_eq!(out.status.code(), Some(2), "exists: {}", text(&out.stderr));
    let out = procq_stdin(&["put", &name], b"alpha\nbeta\n\ngamma");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["get", &name, "-n", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "alpha\nbeta\n\ngamma\n");
    // Empty queue: a short timeout fails quickly with exit 1.
    let t = Instant::now();
    let out = procq(&["get", &name, "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("timed out"));
    assert!(t.elapsed() < Duration::from_secs(5));
    // --raw: the whole input as one item, printed back byte for byte.
    assert!(procq_stdin(&["put", &name, "--raw"], b"x\ny\n")
        .status
        .success());
    assert_eq!(procq(&["get", &name]).stdout, b"x\ny\n\n");
    // Unknown queue and invalid name: exit 2 with a plain message.
    let out = procq(&["get", "no-such-queue-xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no queue named"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(procq(&["stat", "../etc"]).status.code(), Some(2));
}

#[test]
fn shell_items_interoperate_with_rust_string_queues() {
    let name = unique("interop");
    let _c = Cleanup(name.clone());
    let input: String = (1..=10).map(|i| format!("{i}\n")).collect();
    assert!(procq_stdin(&["put", &name, "--create"], input.as_bytes())
        .status
        .success());
    let q = procq::Queue::<String>::open(&name).unwrap();
    let got: Vec<String> = (0..10).map(|_| q.get_nowait().unwrap()).collect();
    assert_eq!(got, (1..=10).map(|i| i.to_string()).collect::<Vec<_>>());
    q.put(&"from rust".to_owned()).unwrap();
    let bytes = procq::Queue::<Vec<u8>>::open(&name).unwrap_or_else(|_| {
        // The queue is untyped, so any item type may open it.
        panic!("untyped queue refused Vec<u8>")
    });
    bytes.put(&b"bytes too".to_vec()).unwrap();
    let out = procq(&["get", &name, "-n", "2"]);
    assert_eq!(text(&out.stdout), "from rust\nbytes too\n");
    // An item that is not in that format is named, not mangled.
    procq::RawQueue::open(&name).unwrap().put(&[200]).unwrap();
    let out = procq(&["get", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a String/Vec<u8> item"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ls_and_stat_report_the_queue_as_json_and_text() {
    let name = unique("ls");
    let q = procq::Builder::new()
        .name(&name)
        .maxsize(7)
        .build::<String>()
        .unwrap();
    q.put(&"a".to_owned()).unwrap();
    q.put(&"b".to_owned()).unwrap();
    let out = procq(&["ls", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .expect("listed");
    assert_eq!(row["items"], 2);
    assert_eq!(row["maxsize"], 7);
    assert_eq!(row["kind"], "Queue");
    assert_eq!(row["processes_alive"], 1, "this test process holds it");
    assert_eq!(row["persistent"], false);
    let out = procq(&["stat", &name, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["items_put"], 2);
    assert_eq!(st["items_got"], 0);
    let out = procq(&["ls"]);
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&name))
        .map(str::to_owned)
        .expect("in ls");
    assert!(line.contains("Queue") && line.contains("1 alive"), "{line}");
    let out = procq(&["stat", &name]);
    assert!(
        text(&out.stdout).contains("items put / got      2 / 0"),
        "{}",
        text(&out.stdout)
    );
    let out = procq(&["stat", &name, "--watch", "--count", "1"]);
    assert!(
        text(&out.stdout).contains("rate in / out"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn rm_refuses_a_queue_in_use_unless_forced() {
    let name = unique("rm");
    let q = procq::Builder::new().name(&name).build::<u8>().unwrap();
    let out = procq(&["rm", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by 1 live process"),
        "{}",
        text(&out.stderr)
    );
    assert!(procq(&["rm", &name, "--force"]).status.success());
    assert!(procq::Queue::<u8>::open(&name).is_err());
    q.put(&1).unwrap(); // the holder keeps working on its mapping
}

#[test]
fn gc_removes_the_queue_of_a_killed_process_and_keeps_live_ones() {
    let orphan = unique("gc-orphan");
    let live = procq::Queue::<u8>::new(0).unwrap();
    let q = procq::Builder::new()
        .name(&orphan)
        .build::<String>()
        .unwrap();
    // A `procq get --follow` child holds the queue; then this process lets go.
    let mut child = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(["get", &orphan, "--follow"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while procq::stats(&orphan).unwrap().attached_processes < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "child never attached"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(q);
    let out = procq(&["gc", "--dry-run"]);
    assert!(!text(&out.stdout).contains(&orphan), "in use: kept");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = procq(&["gc", "--dry-run"]);
    assert!(
        text(&out.stdout).contains(&format!("would remove {orphan}")),
        "{}",
        text(&out.stdout)
    );
    let out = procq(&["gc"]);
    assert!(
        text(&out.stdout).contains(&format!("removed {orphan}")),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains(live.name()));
    assert!(procq::stats(&orphan).is_err(), "gone");
    live.put(&1).unwrap();
}

#[test]
fn demo_runs_the_articles_programs() {
    let out = procq(&["demo"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Final counter value: 100"), "{stdout}");
    assert!(stdout.contains(">> Success: Value reached 100."));
    assert_eq!(stdout.matches("Processing complete").count(), 2);
    for i in 0..5 {
        assert!(stdout.contains(&format!("Processing: Job-{i}")), "{stdout}");
    }
}

#[test]
fn bench_runs_a_filtered_quick_suite() {
    let dir = std::env::temp_dir().join(format!("procq-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let out = procq(&[
        "bench",
        "--quick",
        "--filter",
        "memory",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Memory"),
        "{}",
        text(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report.is_object());
    std::fs::remove_dir_all(&dir).unwrap();
}
