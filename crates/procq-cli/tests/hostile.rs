//! The `procq` command against queues it must not trust or cannot lock:
//! another user's segment (exit 2, nothing touched) and a queue whose lock
//! a stopped process holds (bounded waits, `rm --force` still removes it).

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

const ROLE: &str = "PROCQ_CLI_TEST_ROLE";
/// An item whose decoder stops its (child) process: decoding runs under
/// the queue lock, so the child is stopped holding it.
const STOP_INSIDE: u32 = 0xdead_0001;

#[derive(Serialize, Debug)]
struct Trap(u32);

impl<'de> Deserialize<'de> for Trap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v == STOP_INSIDE && std::env::var_os(ROLE).is_some() {
            // Thread-directed, so that this very thread stops inside the
            // critical section. SAFETY: signals the calling thread.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        Ok(Trap(v))
    }
}

/// The child role: takes the trap item, and so stops holding the lock.
#[test]
fn child_entry() {
    let Ok(name) = std::env::var(ROLE) else {
        return;
    };
    let q = procq::Queue::<Trap>::open(&name).unwrap();
    q.get_timeout(Duration::from_secs(60)).unwrap();
}

fn procq(args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run procq");
    (out, t.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Kills and reaps the stopped child however the test ends.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes a file in /dev/shm however the test ends.
struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn another_users_queue_is_refused_with_exit_2_and_left_alone() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIP: needs root to make a segment owned by another uid");
        return;
    }
    let name = format!("cli-foreign-{}", std::process::id());
    let path = format!("/dev/shm/procq-{name}");
    let _cleanup = Unlink(path.clone());
    std::fs::write(&path, vec![0u8; 256 << 10]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();

    for args in [
        vec!["stat", &name],
        vec!["put", &name, "--create"],
        vec!["get", &name, "--timeout", "0"],
        vec!["rm", &name, "--force"],
    ] {
        let (out, _) = procq(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("uid 65534"),
            "{args:?} names the owner: {}",
            text(&out.stderr)
        );
    }
    let (out, _) = procq(&["ls"]);
    assert!(out.status.success(), "ls: {}", text(&out.stderr));
    let (out, _) = procq(&["gc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("skipped {name}")),
        "gc says it left it: {}",
        text(&out.stderr)
    );
    let meta = std::fs::metadata(&path).expect("still there");
    assert_eq!(meta.permissions().mode() & 0o777, 0o666, "untouched");
}

#[test]
fn a_queue_locked_by_a_stopped_process_never_hangs_the_command() {
    let name = format!("cli-wedged-{}", std::process::id());
    let q = procq::Builder::new()
        .name(&name)
        .persistent(true)
        .build::<Trap>()
        .unwrap();
    let _cleanup = Unlink(format!("/dev/shm/procq-{name}"));
    q.put(&Trap(STOP_INSIDE)).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "-q"])
        .env(ROLE, &name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let child = Reaped(child);
    // Wait until the child has stopped (state T in /proc/<pid>/stat).
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('T'))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "child never stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Bounded: each command gives up on the lock after about a second.
    let limit = Duration::from_secs(15);

    let (out, took) = procq(&["stat", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(took < limit, "stat took {took:?}");
    assert!(
        text(&out.stderr).contains("locked"),
        "{}",
        text(&out.stderr)
    );

    let (out, took) = procq(&["ls"]);
    assert!(out.status.success(), "ls: {}", text(&out.stderr));
    assert!(took < limit, "ls took {took:?}");
    assert!(text(&out.stdout).contains(&name), "{}", text(&out.stdout));

    let (out, took) = procq(&["gc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < limit, "gc took {took:?}");
    assert!(
        text(&out.stderr).contains(&format!("skipped {name}")),
        "{}",
        text(&out.stderr)
    );

    let (out, took) = procq(&["rm", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < limit, "rm took {took:?}");
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );

    let (out, took) = procq(&["rm", &name, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < limit, "rm --force took {took:?}");
    assert!(matches!(
        procq::stats(&name),
        Err(procq::Error::NotFound(_))
    ));
    drop(child);
}
