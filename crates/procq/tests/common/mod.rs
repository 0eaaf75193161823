//! Helpers for tests that run roles in child processes.
//!
//! A test binary re-executes itself with `--exact child_entry` and the role
//! in the environment; each test file's `child_entry` test dispatches on
//! [`role`] (and does nothing in a normal run).

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROLE: &str = "PROCQ_TEST_ROLE";
const ARGS: &str = "PROCQ_TEST_ARGS";
const PARENT: &str = "PROCQ_TEST_PARENT";

/// Starts this test binary as a child running `role` with `args`.
pub fn spawn(role: &str, args: &[&str]) -> Child {
    role_command(role, args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// The command that runs this test binary as a child running `role` with
/// `args`, for a caller that adds environment or pipes before spawning it
/// (what [`spawn`] does with none).
pub fn role_command(role: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    as_role(&mut cmd, role, args).env(PARENT, std::process::id().to_string());
    cmd
}

/// Adds to `cmd` — this test binary, or a launcher whose last arguments
/// are this test binary (`unshare … "$0" "$@"`) — what makes the binary run
/// only its `child_entry` test, as `role` with `args`. The child then does
/// not check who its parent is (a launcher is; see [`role`]).
pub fn as_role<'a>(cmd: &'a mut Command, role: &str, args: &[&str]) -> &'a mut Command {
    cmd.args([
        "--exact",
        "child_entry",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE, role)
    .env(ARGS, args.join("\u{1f}"))
}

/// The role this process was started for, if it is a child.
///
/// A child also dies with its parent: a test that fails (or is ended by its
/// [`watchdog`]) must not leave children running or stopped — in CI they
/// would keep the output pipe open and hang the whole run.
pub fn role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE).ok()?;
    let args = std::env::var(ARGS).unwrap_or_default();
    exit_with_parent();
    Some((role, args.split('\u{1f}').map(str::to_owned).collect()))
}

/// Has the kernel SIGKILL this process when its parent dies — even while
/// it is stopped (a test may have SIGSTOPped it), which no thread of its
/// own could notice. The parent is the thread that spawned us, which lives
/// as long as the test that did.
fn exit_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The parent may have died before the flag was set. (Only children of
    // `spawn` say who their parent is: others run under a launcher, e.g.
    // in another PID namespace, where getppid means something else.)
    let parent = std::env::var(PARENT).ok().and_then(|p| p.parse().ok());
    // SAFETY: getppid has no preconditions.
    if parent.is_some_and(|p: libc::pid_t| p != unsafe { libc::getppid() }) {
        // SAFETY: ends the process at once; nothing of ours needs flushing.
        unsafe { libc::_exit(3) };
    }
}

/// Fails the whole test binary if the guard is still alive after `limit`:
/// a test that hangs must fail with its name in CI, not run into CI's
/// time limit. Children started by [`spawn`] exit with it (see [`role`]).
#[must_use = "the watchdog stops when the guard is dropped"]
pub fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Not eprintln!: libtest captures that for the test, and the
            // capture dies with the process.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n{what}: still running after {limit:?}, failing the test binary"
            );
            std::process::exit(101);
        }
    });
    Watchdog(tx)
}

/// Guard of a [`watchdog`]: dropping it (the test ended) disarms it.
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

/// Sends `sig` to `child` and, for SIGSTOP, returns only once it has
/// stopped (or exited): a signal is delivered asynchronously, and a child
/// still running a moment after `kill` may yet take the queue lock.
pub fn signal(child: &Child, sig: i32) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals our own child, which we have not reaped yet.
    unsafe { libc::kill(pid, sig) };
    if sig == libc::SIGSTOP {
        // SAFETY: `siginfo_t` is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own unreaped child into a valid `info`;
        // WNOWAIT leaves it waitable, so `Child::wait` still reaps it.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
    }
}

/// A child killed and reaped when dropped, so that a failing test leaves
/// none behind (stopped or lingering).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Gets `n` items, each through a call of `get` (an async get) that is
/// given a deadline from 0 up to `spread` (in steps of 37 µs, wrapping),
/// so that many gets are dropped — cancelled — at every stage of their
/// wait; `got` sees each item as it comes (a JoinableQueue's `task_done`).
/// Runs on a 2-thread tokio runtime; fails once `limit` has passed.
/// Returns the items in the order got, and how many gets were cancelled.
pub fn get_with_cancellations<F, Fut>(
    n: u64,
    spread: Duration,
    limit: Duration,
    mut get: F,
    mut got: impl FnMut(u64),
) -> (Vec<u64>, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = procq::Result<u64>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let spread = spread.as_micros() as u64;
    rt.block_on(async {
        let mut items = Vec::new();
        let mut cancelled = 0u64;
        let mut i = 0u64;
        let start = Instant::now();
        while (items.len() as u64) < n {
            assert!(start.elapsed() < limit, "stuck after {} items", items.len());
            let patience = Duration::from_micros((i * 37) % spread);
            i += 1;
            match tokio::time::timeout(patience, get()).await {
                Ok(item) => {
                    let x = item.unwrap();
                    got(x);
                    items.push(x);
                }
                Err(_) => cancelled += 1,
            }
        }
        (items, cancelled)
    })
}
