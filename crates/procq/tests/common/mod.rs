//! Helpers for tests that run roles in child processes.
//!
//! A test binary re-executes itself with `--exact child_entry` and the role
//! in the environment; each test file's `child_entry` test dispatches on
//! [`role`] (and does nothing in a normal run).

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "PROCQ_TEST_ROLE";
const ARGS: &str = "PROCQ_TEST_ARGS";

/// Starts this test binary as a child running `role` with `args`.
pub fn spawn(role: &str, args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(ARGS, args.join("\u{1f}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// The role this process was started for, if it is a child.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE).ok()?;
    let args = std::env::var(ARGS).unwrap_or_default();
    Some((role, args.split('\u{1f}').map(str::to_owned).collect()))
}

/// Waits for `child` to exit, killing it (and failing) after `limit`.
pub fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `child` and asserts it exited with status 0.
pub fn wait_ok(child: &mut Child, limit: Duration) {
    let status = wait(child, limit);
    assert!(status.success(), "child {} failed: {status}", child.id());
}

/// A queue name unique to this test process.
pub fn unique(tag: &str) -> String {
    format!("test-{tag}-{}", std::process::id())
}

/// Whether a segment with this queue name exists in /dev/shm.
pub fn segment_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm/procq-{name}")).exists()
}
