//! The real `procq` binary against real queues and processes.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{procq, procq_stdin, text, unique, Cleanup};

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
fn demo_runs_the_article_then_shows_crash_safety_speed_and_the_live_queue() {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_procq"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Printed as it happens: the first part's heading comes long before the end.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("== 1. The article"), "{first}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "printed only at the end"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = first + &rest;
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // The article.
    assert!(stdout.contains("Final counter value: 100"), "{stdout}");
    assert!(stdout.contains(">> Success: Value reached 100."));
    assert_eq!(stdout.matches("Processing complete").count(), 2);
    for i in 0..5 {
        assert!(stdout.contains(&format!("Processing: Job-{i}")), "{stdout}");
    }
    // The same with shutdown(): both consumers' loops end, every job handled.
    assert_eq!(
        stdout
            .matches("the queue is shut down and drained: done")
            .count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("--- 5 jobs handled by 2 consumers, both ended by one shutdown() ---"),
        "{stdout}"
    );
    // A producer killed mid-stream, and the check.
    let kill = stdout
        .lines()
        .find(|l| l.starts_with("SIGKILL"))
        .expect("a SIGKILL line");
    assert!(kill.contains("producer A"), "{kill}");
    assert!(stdout.contains("killed by signal 9"), "{stdout}");
    assert!(stdout.contains("producer B carried on: all 100000 of its items arrived"));
    let check = stdout
        .lines()
        .find(|l| l.contains("no item lost"))
        .expect("the check");
    assert!(check.starts_with("check: the queue counted"), "{check}");
    // procq against a pipe, with the ratio.
    let ratio = stdout
        .lines()
        .find(|l| l.contains("x the pipe"))
        .expect("a ratio");
    assert!(ratio.contains("M items/s"), "{ratio}");
    // The live queue as ls and stat show it.
    let queue = stdout
        .lines()
        .find_map(|l| l.strip_prefix("$ procq stat "))
        .expect("a stat of the live queue")
        .to_owned();
    assert!(stdout.contains("$ procq ls"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&queue) && l.contains("Queue")),
        "{stdout}"
    );
    assert!(stdout.contains("items put / got"), "{stdout}");
    // What next, and nothing left behind.
    let next = stdout.lines().last().unwrap();
    assert!(
        next.contains("Next:") && next.contains("import procq") && next.contains("redis://"),
        "{next}"
    );
    assert!(
        matches!(procq::stats(&queue), Err(procq::Error::NotFound(_))),
        "{queue} left behind"
    );
    // A hang guard, not a speed test: it takes about ten seconds unloaded.
    assert!(t.elapsed() < Duration::from_secs(300));
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
        "--json-out",
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
    // (Column widths follow the longest label, which depends on the kind.)
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().eq(["items", "4"])),
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

/// `procq create URL` is exclusive on the server, as on shared memory:
/// of several processes racing to create one Redis queue, exactly one
/// succeeds and the others fail with "already exists" (exit 2). Each round
/// starts 6 `procq create` processes with the same arguments on a fresh
/// name at once.
#[cfg(feature = "redis")]
#[test]
fn redis_url_create_racing_processes_exactly_one_wins() {
    let Some(server) = redis_server() else { return };
    let racers = 6;
    for round in 0..12 {
        let url = format!("{server}/{}", unique(&format!("redis-race-{round}")));
        let _c = Cleanup(url.clone());
        let children: Vec<_> = (0..racers)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_procq"))
                    .args(["create", &url, "--maxsize", "7"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run procq")
            })
            .collect();
        // Each child is bounded by the URL's timeout_ms (5 s by default).
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait for procq"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        let report: Vec<String> = outs
            .iter()
            .map(|o| {
                format!(
                    "{:?}: {}{}",
                    o.status.code(),
                    text(&o.stdout),
                    text(&o.stderr)
                )
            })
            .collect();
        assert_eq!(
            won, 1,
            "round {round}: {won} creates succeeded: {report:#?}"
        );
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert_eq!(o.status.code(), Some(2), "{report:#?}");
            assert!(text(&o.stderr).contains("already exists"), "{report:#?}");
        }
        let out = procq(&["stat", &url, "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["maxsize"], 7);
    }
}

#[test]
fn redis_url_password_env_keeps_the_password_out_of_argv_and_output() {
    let Some(server) = redis_server() else { return };
    // The password travels in the environment; the URL on the command line
    // (what `ps` shows) only names the variable. (The test server's default
    // user has no password, so it accepts this one; tests/redis.rs checks
    // that a password from the environment authenticates an ACL user.)
    let secret = "env-sekrit-41c9";
    let var = "PROCQ_CLI_TEST_REDIS_PW";
    let Some((scheme, rest)) = server.split_once("://") else {
        panic!("PROCQ_REDIS_URL {server:?} is not a URL")
    };
    let db = format!("{scheme}://default@{rest}?password_env={var}");
    let name = unique("redis-pwenv");
    let url = format!("{scheme}://default@{rest}/{name}?password_env={var}");
    let _c = Cleanup(format!("{server}/{name}"));
    let mut seen = String::new();
    let mut run = |args: &[&str], input: &[u8], with_var: bool| -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_procq"));
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if with_var {
            cmd.env(var, secret);
        } else {
            cmd.env_remove(var);
        }
        let mut child = cmd.spawn().expect("run procq");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
        assert!(!args.iter().any(|a| a.contains(secret)));
        out
    };
    let out = run(&["put", &url, "--create"], b"1\n2\n", true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["stat", &url, "--json"], b"", true);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["items"], 2);
    run(&["stat", &url], b"", true);
    let out = run(&["ls", &db], b"", true);
    assert!(text(&out.stdout).contains(&name), "{}", text(&out.stdout));
    run(&["ls", &db, "--json"], b"", true);
    let out = run(&["get", &url, "-n", "2"], b"", true);
    assert_eq!(text(&out.stdout), "1\n2\n");
    // Without the variable: a usage error naming the option, not the value.
    let out = run(&["stat", &url], b"", false);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("password_env"));
    run(
        &[
            "get",
            &format!("{server}/{name}-missing?password_env={var}"),
        ],
        b"",
        true,
    );
    let out = run(&["rm", &url], b"", true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!seen.contains(secret), "password shown:\n{seen}");
}

#[test]
fn redis_url_dead_letters_are_read_with_get_and_counted_by_stat() {
    let Some(server) = redis_server() else { return };
    let name = unique("redis-poison");
    let plain = format!("{server}/{name}");
    let dead = format!("{server}/{name}.dead");
    let _c = (Cleanup(plain.clone()), Cleanup(dead.clone()));
    // One delivery allowed; no heartbeat, so the lease of an item got and
    // never finished runs out while this process lives.
    let url = format!("{plain}?lease_ms=200&heartbeat=0&max_deliveries=1");
    let q = procq::JoinableQueue::<String>::open_or_create(&url, 0).unwrap();
    q.put(&"poison".to_owned()).unwrap();
    assert_eq!(q.get().unwrap(), "poison");
    std::thread::sleep(Duration::from_millis(600));
    // `stat` reaps the expired lease: the item goes to <name>.dead.
    let out = procq(&["stat", &plain, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["deliveries"], 1, "{st}");
    assert_eq!(st["redeliveries"], 0, "{st}");
    assert_eq!(st["dead_letters"], 1, "{st}");
    assert_eq!(st["max_deliveries"], 1, "{st}");
    assert_eq!(st["unfinished_tasks"], 0, "{st}");
    let out = procq(&["stat", &plain]);
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("dead letters") && l.contains("1 (max_deliveries 1)")),
        "{}",
        text(&out.stdout)
    );
    let out = procq(&["ls", &server]);
    assert!(text(&out.stdout).contains(&dead), "{}", text(&out.stdout));
    let out = procq(&["get", &dead]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "poison\n");
    q.join_timeout(Duration::from_secs(5)).unwrap();
}

#[test]
fn redis_url_on_a_cluster_put_stat_ls_get_rm() {
    let Some(_) = redis_server() else { return };
    let cluster = std::env::var("PROCQ_REDIS_CLUSTER_URL")
        .expect("PROCQ_REDIS_CLUSTER_URL: 50-redis.sh starts a cluster with the server");
    let url = format!("{cluster}/{}", unique("redis-cluster"));
    let _c = Cleanup(url.clone());
    let out = procq_stdin(&["put", &url, "--create"], b"a\nb\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["stat", &url, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["items"], 2, "{st}");
    let out = procq(&["ls", &cluster]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&url), "{}", text(&out.stdout));
    let out = procq(&["get", &url, "-n", "2"]);
    assert_eq!(text(&out.stdout), "a\nb\n");
    assert!(procq(&["rm", &url]).status.success());
    assert!(matches!(procq::stats(&url), Err(procq::Error::NotFound(_))));
}

#[test]
fn redis_url_rediss_works_out_of_the_box() {
    let Some(_) = redis_server() else { return };
    // 50-redis.sh runs a TLS-only server and trusts its CA through
    // SSL_CERT_FILE, which the procq command inherits.
    let tls = std::env::var("PROCQ_REDIS_TLS_URL")
        .expect("PROCQ_REDIS_TLS_URL: 50-redis.sh starts a TLS server with the plain one");
    let url = format!("{tls}/{}", unique("redis-tls"));
    let _c = Cleanup(url.clone());
    let out = procq_stdin(&["put", &url, "--create"], b"over tls\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["stat", &url, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["items"], 1, "{st}");
    let out = procq(&["get", &url]);
    assert_eq!(text(&out.stdout), "over tls\n");
    assert!(procq(&["rm", &url]).status.success());
}

/// Runs a shell command line with `$PROCQ` set to the binary.
fn sh(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PROCQ", env!("CARGO_BIN_EXE_procq"))
        .output()
        .expect("run sh")
}

#[test]
fn raw_put_and_get_round_trip_a_binary_file_byte_for_byte() {
    let name = unique("raw");
    let _c = Cleanup(name.clone());
    let dir = std::env::temp_dir().join(format!("procq-cli-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 100 KB of every byte value, NULs and newlines included, and a text
    // file ending without a newline, and an empty one.
    let mut binary = Vec::with_capacity(100_000);
    let mut x = 0x1234_5678u32;
    while binary.len() < 100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        binary.push((x >> 11) as u8);
    }
    let files = [
        ("binary", binary),
        ("text", b"x\n\ny".to_vec()),
        ("newline", b"x\n".to_vec()),
        ("empty", Vec::new()),
    ];
    for (file, bytes) in &files {
        let src = dir.join(file);
        std::fs::write(&src, bytes).unwrap();
        let back = dir.join(format!("{file}.out"));
        let out = sh(&format!(
            "\"$PROCQ\" put {name} --create --raw < {src} && \"$PROCQ\" get {name} --raw > {back} && cmp {src} {back}",
            src = src.display(),
            back = back.display()
        ));
        assert!(
            out.status.success(),
            "{file}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(&std::fs::read(&back).unwrap(), bytes, "{file}");
    }
    // A Rust Queue<Vec<u8>> sees the file as one item.
    assert!(procq_stdin(&["put", &name, "--raw"], &files[0].1)
        .status
        .success());
    let q = procq::Queue::<Vec<u8>>::open(&name).unwrap();
    assert_eq!(q.get_nowait().unwrap(), files[0].1);
    // --stored prints the record as stored: the varint length, then the bytes.
    assert!(procq_stdin(&["put", &name, "--raw"], b"x\n")
        .status
        .success());
    assert_eq!(procq(&["get", &name, "--stored"]).stdout, b"\x02x\n");
    // --raw and -0 are one framing or the other.
    assert_eq!(procq(&["get", &name, "--raw", "-0"]).status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn null_framing_carries_items_with_newlines() {
    let name = unique("null");
    let _c = Cleanup(name.clone());
    // A final NUL is optional, and an empty record is an empty item.
    let out = procq_stdin(&["put", &name, "--create", "-0"], b"a\nb\0\0c d\0last");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = procq::Queue::<String>::open(&name).unwrap();
    assert_eq!(q.qsize(), 4);
    drop(q);
    let out = procq(&["get", &name, "-n", "4", "--null"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"a\nb\0\0c d\0last\0");
    // What find -print0 | procq put -0 puts, procq get -0 | xargs -0 takes.
    let out = sh(&format!(
        "printf 'one\\ntwo\\0three\\0' | \"$PROCQ\" put {name} -0 && \"$PROCQ\" get {name} -0 -n 2 | xargs -0 -n 1 printf '<%s>'"
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "<one\ntwo><three>");
}

#[test]
fn put_timeout_says_how_many_items_went_in() {
    let name = unique("full");
    let _c = Cleanup(name.clone());
    assert!(procq(&["create", &name, "--maxsize", "2"]).status.success());
    let out = procq_stdin(&["put", &name, "--timeout", "0.2"], b"1\n2\n3\n4\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out after 2 item(s) went in"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&procq(&["get", &name, "-n", "2"]).stdout), "1\n2\n");
}

#[test]
fn rm_if_exists_is_idempotent() {
    let name = unique("rm-if");
    let _c = Cleanup(name.clone());
    let out = procq(&["rm", &name]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = procq(&["rm", &name, "--if-exists"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert!(procq(&["create", &name]).status.success());
    let out = procq(&["rm", &name, "--if-exists"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("removed {name}\n"));
    assert!(matches!(
        procq::stats(&name),
        Err(procq::Error::NotFound(_))
    ));
    // A bad name is still bad usage, and a queue in use is still refused.
    assert_eq!(
        procq(&["rm", "../etc", "--if-exists"]).status.code(),
        Some(2)
    );
    let q = procq::Builder::new().name(&name).build::<u8>().unwrap();
    assert_eq!(procq(&["rm", &name, "--if-exists"]).status.code(), Some(1));
    drop(q);
}

#[test]
fn help_shows_exit_codes_urls_and_file_arguments() {
    let out = procq(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes: 0 success"), "{help}");
    assert!(
        help.contains("redis://[user:password@]host:port/db/name"),
        "{help}"
    );
    let out = procq(&["bench", "--help"]);
    let help = text(&out.stdout);
    for flag in [
        "--json-out <FILE>",
        "--plot <FILE>",
        "--filter <SUBSTR>",
        "--runs <N>",
        "--list",
        "--targets",
        "Exit status",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    let help = text(&procq(&["put", "--help"]).stdout);
    assert!(
        help.contains("--timeout <SECONDS>") && help.contains("-0, --null"),
        "{help}"
    );
    // --json is a flag of ls/stat only; bench writes JSON with --json-out.
    assert_eq!(procq(&["bench", "--json", "x.json"]).status.code(), Some(2));
    assert_eq!(procq(&["bench", "--runs", "0"]).status.code(), Some(2));
    let out = procq(&["bench", "--filter", "no-such-case"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn stat_watch_redraws_only_on_a_terminal_and_streams_ndjson() {
    let name = unique("watch");
    let q = procq::Builder::new().name(&name).build::<String>().unwrap();
    q.put(&"a".to_owned()).unwrap();
    // A pipe: two ticks appended, no escapes.
    let out = procq(&["stat", &name, "--watch", "--count", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(!s.contains('\x1b'), "escapes in a pipe: {s:?}");
    assert_eq!(s.matches("rate in / out").count(), 2, "{s}");
    // --json: one object per line and tick, with the rates.
    let out = procq(&["stat", &name, "--watch", "--json", "--count", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["name"], name.as_str());
        assert_eq!(l["items"], 1);
        assert!(l["rate_in"].is_number() && l["rate_out"].is_number(), "{l}");
        assert!(l["unix_ms"].as_u64().unwrap() > 0);
    }
    // A terminal (script(1) gives it one): redrawn in place.
    let out = sh(&format!(
        "script -qec '\"$PROCQ\" stat {name} --watch --count 1' /dev/null"
    ));
    if out.status.success() {
        assert!(
            text(&out.stdout).contains("\x1b[H\x1b[2J"),
            "{:?}",
            text(&out.stdout)
        );
    } else {
        eprintln!(
            "SKIP terminal case: script(1) failed: {}",
            text(&out.stderr)
        );
    }
    drop(q);
}

#[test]
fn unfinished_tasks_are_shown_for_joinable_queues_only() {
    let plain = unique("plain");
    let joinable = unique("joinable");
    let _c = (Cleanup(plain.clone()), Cleanup(joinable.clone()));
    assert!(procq(&["create", &plain]).status.success());
    assert!(procq(&["create", &joinable, "--joinable"]).status.success());
    assert!(procq_stdin(&["put", &joinable], b"job\n").status.success());
    let s = text(&procq(&["stat", &plain]).stdout);
    assert!(!s.contains("unfinished"), "{s}");
    let s = text(&procq(&["stat", &joinable]).stdout);
    assert!(s.contains("unfinished tasks     1"), "{s}");
    let st: serde_json::Value =
        serde_json::from_slice(&procq(&["stat", &plain, "--json"]).stdout).unwrap();
    assert!(st["unfinished_tasks"].is_null(), "{st}");
    let st: serde_json::Value =
        serde_json::from_slice(&procq(&["stat", &joinable, "--json"]).stdout).unwrap();
    assert_eq!(st["unfinished_tasks"], 1);
}

#[test]
fn completions_and_man_page_describe_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = procq(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["procq", "completions", "stat", "if-exists", "json-out"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    assert_eq!(procq(&["completions", "tcsh"]).status.code(), Some(2));
    // bash accepts the script it is given.
    let out = sh("\"$PROCQ\" completions bash > /tmp/procq-compl-$$.bash && bash -n /tmp/procq-compl-$$.bash; s=$?; rm -f /tmp/procq-compl-$$.bash; exit $s");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH procq"),
        "{page}"
    );
    for word in ["completions", "Exit codes", "demo", "bench"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}

#[test]
fn bench_prints_the_comparison_and_targets_only_when_asked() {
    let out = procq(&["bench", "--list"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("throughput/procq/1p1c/8B/bounded"));
    let out = procq(&["bench", "--quick", "--filter", "throughput/memcpy/1p1c/8B"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("memcpy") && !table.contains("Targets"),
        "{table}"
    );
    // Not a terminal: one progress line per case instead of a bar.
    assert!(
        text(&out.stderr).contains("throughput/memcpy/1p1c/8B"),
        "{}",
        text(&out.stderr)
    );
    let out = procq(&[
        "bench",
        "--quick",
        "--filter",
        "throughput/memcpy/1p1c/8B",
        "--targets",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Targets"));
}

/// `procq get` refuses an item it cannot print and leaves it in the
/// queue, first in line, small or large (a large one is read outside the
/// lock): nothing is lost, and `--stored` (or a program) can still get it.
#[test]
fn get_leaves_an_item_it_cannot_print_first_in_line() {
    let name = unique("refuse");
    let _c = Cleanup(name.clone());
    let raw = procq::RawQueue::open_or_create(&name, 0).unwrap();
    let q = procq::Queue::<String>::open(&name).unwrap();
    for bad in [vec![200u8], vec![0xff; 20_000]] {
        q.put(&"before".to_owned()).unwrap();
        raw.put(&bad).unwrap();
        q.put(&"after".to_owned()).unwrap();
        let out = procq(&["get", &name, "-n", "3"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "before\n");
        let err = text(&out.stderr);
        assert!(
            err.contains("item 2: item of") && err.contains("it stays first in the queue"),
            "{err}"
        );
        assert_eq!(raw.qsize(), 2, "the refused item is still there");
        assert_eq!(raw.get_nowait().unwrap(), bad);
        assert_eq!(q.get_nowait().unwrap(), "after");
    }
}

#[cfg(feature = "redis")]
#[test]
fn redis_url_shutdown_ends_get_follow_with_exit_0_and_refuses_puts() {
    let Some(server) = redis_server() else { return };
    let url = format!("{server}/{}", unique("redis-shut"));
    let _c = Cleanup(url.clone());
    assert!(procq_stdin(&["put", &url, "--create"], b"one\n")
        .status
        .success());
    let mut follower = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(["get", &url, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let follower = Kill(&mut follower);
    // Whether or not the follower blocks yet, it must drain and then end.
    std::thread::sleep(Duration::from_millis(300));
    assert!(procq_stdin(&["put", &url], b"two\n").status.success());
    let out = procq(&["shutdown", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = follower.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "get --follow did not end at shutdown"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(follower.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stdout, "one\ntwo\n");
    // Shut down for every later client: puts fail, stat says so.
    let out = procq_stdin(&["put", &url], b"three\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("shut down"),
        "{}",
        text(&out.stderr)
    );
    let out = procq(&["stat", &url]);
    assert!(
        text(&out.stdout).contains("shut down"),
        "{}",
        text(&out.stdout)
    );
    let out = procq(&["get", &url, "--follow"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = procq(&["shutdown", &url, "--immediate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
