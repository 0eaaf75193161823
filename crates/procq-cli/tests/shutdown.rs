//! `procq shutdown` and how `put`/`get` end on a shut-down queue (issue #16).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{procq, procq_stdin, text, unique, Cleanup};

#[test]
fn get_follow_ends_with_exit_0_at_shutdown_and_drain() {
    let name = unique("follow-end");
    let _c = Cleanup(name.clone());
    assert!(procq(&["create", &name]).status.success());
    let mut follower = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(["get", &name, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The follower waits for items; then some come, then the end.
    let start = Instant::now();
    while procq::stats(&name).unwrap().blocked_gets == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "never blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = procq_stdin(&["put", &name], b"one\ntwo\nthree\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = procq(&["shutdown", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = follower.kill();
            panic!("get --follow did not end at shutdown");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    follower
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "one\ntwo\nthree\n");
    // A follower started later drains nothing and ends at once, with 0.
    let out = procq(&["get", &name, "--follow"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn put_and_plain_get_fail_on_a_shut_down_queue_and_stat_shows_it() {
    let name = unique("shut");
    let _c = Cleanup(name.clone());
    assert!(procq(&["create", &name]).status.success());
    assert!(procq_stdin(&["put", &name], b"a\nb\n").status.success());
    assert!(procq(&["shutdown", &name]).status.success());
    assert!(
        procq(&["shutdown", &name]).status.success(),
        "again: harmless"
    );
    let out = procq_stdin(&["put", &name], b"c\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is shut down: 0 item(s) went in"),
        "{}",
        text(&out.stderr)
    );
    let out = procq(&["stat", &name, "--json"]);
    let compact: String = text(&out.stdout).split_whitespace().collect();
    assert!(
        compact.contains("\"shutdown\":true"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&procq(&["stat", &name]).stdout).contains("shut down"));
    // What is left is handed out; asking for more than that fails.
    let out = procq(&["get", &name, "-n", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "a\nb\n");
    assert!(
        text(&out.stderr).contains("shut down and empty after 2 item(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn shutdown_immediate_drops_the_items_and_a_missing_queue_is_exit_2() {
    let name = unique("shut-now");
    let _c = Cleanup(name.clone());
    assert!(procq(&["create", &name, "--joinable"]).status.success());
    assert!(procq_stdin(&["put", &name], b"a\nb\n").status.success());
    let out = procq(&["shutdown", &name, "--immediate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = procq::stats(&name).unwrap();
    assert_eq!((s.items, s.unfinished_tasks, s.shutdown), (0, 0, true));
    let out = procq(&["get", &name, "--follow"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let out = procq(&["shutdown", &unique("no-such")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
