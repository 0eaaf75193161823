//! `Process` across real OS processes: return values, exit codes, panics,
//! lifecycle errors, large arguments, and what happens when `init()` is
//! forgotten. (Queues as arguments, signals, nesting and daemons are tested
//! with queues in `procq`'s `tests/process_with_queues.rs`.)
//!
//! The test binary itself is re-executed for every child: `test_support!`
//! makes libtest run only its dispatching test there.

use std::time::Duration;

use procq_process::{Process, ProcessError};

procq_process::test_support!();

/// Upper bound for every wait: generous, only reached when something hangs.
const LIMIT: Duration = Duration::from_secs(20);

/// The environment variable procq marks its children with (an internal
/// detail, needed here only to tell the "forgetful main" tests apart).
const MARKER: &str = "PROCQ_PROCESS_CHILD";

fn add(a: u64, b: u64) -> (u32, u64) {
    (std::process::id(), a + b)
}

#[test]
fn child_exits_zero_and_returns_its_value() {
    let mut p = Process::spawn(add, (2, 3)).unwrap();
    let pid = p.pid().unwrap();
    assert_ne!(pid, std::process::id());
    let (child_pid, sum) = p.join_timeout(LIMIT).unwrap();
    assert_eq!((child_pid, sum), (pid, 5));
    assert_eq!(p.exit_code(), Some(0));
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(ProcessError::AlreadyJoined { .. })));
}

#[test]
fn closures_without_captures_are_targets() {
    let mut p = Process::spawn(|s: String, n: usize| s.repeat(n), ("ab".to_owned(), 3)).unwrap();
    assert_eq!(p.join_timeout(LIMIT).unwrap(), "ababab");
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

#[test]
fn non_zero_exit_is_reported() {
    let mut p = Process::spawn(exit_with, (7,)).unwrap();
    match p.join_timeout(LIMIT) {
        Err(ProcessError::Exited { code: 7, pid }) => assert_eq!(Some(pid), p.pid()),
        other => panic!("expected exit code 7, got {other:?}"),
    }
    assert_eq!(p.exit_code(), Some(7));
}

#[test]
fn exit_zero_inside_a_unit_target_is_success() {
    let mut p = Process::spawn(exit_with, (0,)).unwrap();
    p.join_timeout(LIMIT).unwrap();
}

fn fail_loudly(what: String) -> u32 {
    panic!("worker failed on {what}");
}

#[test]
fn panic_message_reaches_the_parent() {
    let mut p = Process::spawn(fail_loudly, ("job 42".to_owned(),)).unwrap();
    match p.join_timeout(LIMIT) {
        Err(ProcessError::Panicked { message, .. }) => {
            assert!(message.contains("worker failed on job 42"), "{message}");
            assert!(
                message.contains("tests/lifecycle.rs"),
                "no location: {message}"
            );
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(p.exit_code(), Some(101));
}

fn noop() {}

/// Stands for a `main` that does not call `procq::init()` but starts a
/// Process. In a normal test run it only checks that it can.
#[test]
fn forgetful_main_starts_a_process() {
    let is_child = std::env::var_os(MARKER).is_some();
    let result = Process::spawn(noop, ());
    if is_child {
        // Refused: no fork bomb, and the parent is told why.
        assert!(matches!(result, Err(ProcessError::NotInitialized)));
    } else {
        result.unwrap().join_timeout(LIMIT).unwrap();
    }
}

/// Stands for a `main` that does not call `procq::init()` and just returns.
#[test]
fn forgetful_main_returns() {}

#[test]
fn forgetting_init_in_the_child_is_a_clear_error() {
    let mut p = Process::new(noop, ()).__test_entry("forgetful_main_starts_a_process");
    p.start().unwrap();
    match p.join_timeout(LIMIT) {
        Err(e @ ProcessError::NotDispatched { .. }) => {
            let text = e.to_string();
            assert!(text.contains("procq::init()"), "{text}");
            assert!(text.contains("main() ran instead"), "{text}");
        }
        other => panic!("expected NotDispatched, got {other:?}"),
    }

    let mut p = Process::new(noop, ()).__test_entry("forgetful_main_returns");
    p.start().unwrap();
    match p.join_timeout(LIMIT) {
        Err(e @ ProcessError::NotDispatched { .. }) => {
            let text = e.to_string();
            assert!(text.contains("without running its target"), "{text}");
            assert!(text.contains("procq::init()"), "{text}");
        }
        other => panic!("expected NotDispatched, got {other:?}"),
    }
}

#[test]
fn lifecycle_errors() {
    let mut p = Process::new(noop, ());
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.kill(), Err(ProcessError::NotStarted)));
    assert_eq!(p.exit_code(), None);
    p.start().unwrap();
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    p.join_timeout(LIMIT).unwrap();
}

#[test]
fn large_arguments_and_results_pass_whole() {
    fn reverse(mut v: Vec<u8>) -> Vec<u8> {
        v.reverse();
        v
    }
    // Far larger than a pipe buffer (64 KiB) both ways.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = Process::spawn(reverse, (data.clone(),)).unwrap();
    let back = p.join_timeout(LIMIT).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back.iter().rev().eq(data.iter()));
}
