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

/// `redis://127.0.0.1:PORT/0` from `PROCQ_REDIS_URL` (set by
/// `scripts/test.d/50-redis.sh`), or `None` with a message: the Redis tests
/// skip without a server.
#[cfg(feature = "redis")]
fn redis_server() -> Option<String> {
    match std::env::var("PROCQ_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            eprintln!(
                "SKIP: PROCQ_REDIS_URL is not set (no redis-server); \
                 run scripts/test.d/50-redis.sh to test procq with Redis URLs"
            );
            None
        }
    }
}

#[cfg(feature = "redis")]
#[test]
fn redis_url_put_stat_ls_get_rm() {
    let Some(server) = redis_server() else { return };
    let url = format!("{server}/{}", unique("redis-pipe"));
    let _c = Cleanup(url.clone());
    // Without --create a missing Redis queue is an error, and is not made.
    let out = procq_stdin(&["put", &url], b"x\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no queue named"));
    assert!(matches!(procq::stats(&url), Err(procq::Error::NotFound(_))));
    let out = procq(&["get", &url, "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(matches!(procq::stats(&url), Err(procq::Error::NotFound(_))));

    let out = procq_stdin(
        &["put", &url, "--create", "--maxsize", "10"],
        b"alpha\nbeta\n\ngamma",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["stat", &url, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["name"], url.as_str());
    assert_eq!(st["items"], 4);
    assert_eq!(st["maxsize"], 10);
    assert_eq!(st["kind"], "Queue");
    assert!(st["bytes_used"].is_null() && st["items_put"].is_null());
    let out = procq(&["stat", &url]);
    assert!(
        text(&out.stdout).contains("items             4"),
        "{}",
        text(&out.stdout)
    );
    let out = procq(&["stat", &url, "--watch", "--count", "1"]);
    assert!(
        text(&out.stdout).contains("net rate"),
        "{}",
        text(&out.stdout)
    );

    // `ls` of the database lists it, as JSON and as a table.
    let out = procq(&["ls", &server, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == url.as_str())
        .expect("listed");
    assert_eq!(row["items"], 4);
    assert!(row["capacity_bytes"].is_null() && row["age_seconds"].is_null());
    let out = procq(&["ls", &server]);
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{url} ")))
        .map(str::to_owned)
        .expect("in ls");
    assert!(line.contains("Queue") && line.contains(" 4 "), "{line}");
    // `procq ls` alone still lists shared memory only.
    assert!(!text(&procq(&["ls"]).stdout).contains(&url));
    // A queue URL is not a database.
    assert_eq!(procq(&["ls", &url]).status.code(), Some(2));

    // The items come back in order, then an empty queue times out.
    let out = procq(&["get", &url, "-n", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "alpha\nbeta\n\ngamma\n");
    let t = Instant::now();
    let out = procq(&["get", &url, "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"));
    assert!(t.elapsed() < Duration::from_secs(5));

    // Rust reads what the shell put, as in shared memory.
    assert!(procq_stdin(&["put", &url], b"shared\n").status.success());
    let q = procq::Queue::<String>::open(&url).unwrap();
    assert_eq!(q.get_nowait().unwrap(), "shared");
    drop(q);

    let out = procq(&["rm", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("removed {url}\n"));
    let out = procq(&["stat", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(procq(&["rm", &url]).status.code(), Some(2));
}

#[cfg(feature = "redis")]
#[test]
fn redis_url_create_and_a_password_is_never_shown() {
    let Some(server) = redis_server() else { return };
    // The test server's default user has no password, so it accepts any
    // (`AUTH default <anything>`): the URL carries one all the same.
    let password = "sekrit-pw-7f3a";
    let Some((scheme, rest)) = server.split_once("://") else {
        panic!("PROCQ_REDIS_URL {server:?} is not a URL")
    };
    let db = format!("{scheme}://default:{password}@{rest}");
    let name = unique("redis-pw");
    let url = format!("{db}/{name}");
    let shown = format!("{scheme}://default:***@{rest}/{name}");
    let _c = Cleanup(url.clone());
    let mut seen = String::new();
    let mut run = |args: &[&str], input: Option<&[u8]>| -> Output {
        let out = match input {
            Some(i) => procq_stdin(args, i),
            None => procq(args),
        };
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
        out
    };

    let out = run(&["create", &url, "--maxsize", "5", "--joinable"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&shown), "{}", text(&out.stdout));
    let out = run(&["create", &url], None);
    assert_eq!(out.status.code(), Some(2), "exists: {}", text(&out.stderr));
    assert_eq!(run(&["put", &url], Some(b"1\n2\n")).status.code(), Some(0));
    let out = run(&["stat", &url, "--json"], None);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["name"], shown.as_str());
    assert_eq!(st["kind"], "JoinableQueue");
    assert_eq!(st["maxsize"], 5);
    assert_eq!(st["items"], 2);
    run(&["stat", &url], None);
    let out = run(&["ls", &db], None);
    assert!(text(&out.stdout).contains(&shown), "{}", text(&out.stdout));
    run(&["ls", &db, "--json"], None);
    let out = run(&["get", &url, "-n", "2"], None);
    assert_eq!(text(&out.stdout), "1\n2\n");
    // Full, then failures of each kind name the queue.
    let out = run(
        &["put", &url, "--timeout", "0.2"],
        Some(b"a\nb\nc\nd\ne\nf\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stayed full"));
    run(&["get", &format!("{db}/{name}-missing")], None);
    run(&["put", &format!("{db}/{name}-missing")], Some(b"x\n"));
    run(&["ls", &format!("{db}/x/y")], None);
    run(&["stat", &format!("{db}/bad{{name}}")], None);
    let out = run(&["rm", &url], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    run(&["rm", &url], None);
    assert!(seen.contains("***"), "{seen}");
    assert!(!seen.contains(password), "password shown:\n{seen}");
}
