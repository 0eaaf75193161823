//! Process identity that survives pid reuse: a pid plus its start time.
//!
//! A bare pid is not enough to tell whether a queue's user is still alive:
//! the kernel hands pids out again. `/proc/<pid>/stat` field 22 (start time
//! in clock ticks since boot) pins the identity. Zombies count as dead: a
//! killed child that its parent has not reaped yet can no longer touch the
//! queue.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Counts `fork()`s this process is a child of (see [`fork_generation`]).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_fork_child() {
    // Async-signal-safe: a single atomic add.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in the child of every `fork()`. Handles compare it
/// with the value they were made under to notice that they now live in a
/// forked child (Python's `fork` start method passes queues that way) and
/// must attach as that child rather than act as their parent.
pub(crate) fn fork_generation() -> u64 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add.
        unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// A process as recorded in a queue's attachment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessId {
    /// Kernel process id.
    pub(crate) pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub(crate) start_time: u64,
}

/// What `/proc/<pid>/stat` says about a process.
struct Stat {
    state: u8,
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the last ')' are plain numbers.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    // `rest` starts at field 3 (state); field 22 is 19 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

impl ProcessId {
    /// The calling process.
    pub(crate) fn current() -> ProcessId {
        let pid = std::process::id();
        let start_time = read_stat(pid).map(|s| s.start_time).unwrap_or(0);
        ProcessId { pid, start_time }
    }

    /// Whether this exact process (same pid, same start) still runs.
    pub(crate) fn is_alive(&self) -> bool {
        if self.pid == 0 {
            return false;
        }
        match read_stat(self.pid) {
            Some(st) => st.start_time == self.start_time && st.state != b'Z' && st.state != b'X',
            None => false,
        }
    }

    /// Whether any running process has this pid (used where no start time
    /// is recorded).
    pub(crate) fn pid_exists(pid: u32) -> bool {
        read_stat(pid).is_some_and(|st| st.state != b'Z' && st.state != b'X')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_other_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        assert!(!ProcessId {
            start_time: me.start_time + 1,
            ..me
        }
        .is_alive());
        assert!(!ProcessId {
            pid: 0,
            start_time: 0
        }
        .is_alive());
    }

    #[test]
    fn reaped_and_zombie_children_are_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let id = ProcessId {
            pid,
            start_time: read_stat(pid).map(|s| s.start_time).unwrap_or(0),
        };
        // Wait until it has exited but is not reaped: a zombie.
        for _ in 0..500 {
            if read_stat(pid).is_none_or(|s| s.state == b'Z') {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(!id.is_alive());
        child.wait().unwrap();
        assert!(!id.is_alive());
    }
}
