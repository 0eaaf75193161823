//! [`Process`]: run a function in a new OS process, like Python's
//! `multiprocessing.Process`, and hand it queues as arguments.
//!
//! ```
//! use procq::{Process, Queue};
//!
//! fn worker(results: Queue<String>, n: u32) -> u32 {
//!     results.put(&format!("hello from {}", std::process::id())).unwrap();
//!     n * 2
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     procq::init(); // first line of main: a re-executed child runs its target here
//!
//!     let results = Queue::new(0)?;
//!     let mut p = Process::spawn(worker, (results.clone(), 21))?;
//!     assert_eq!(p.join()?, 42); // the target's return value comes back
//!     assert!(results.get()?.starts_with("hello from "));
//!     Ok(())
//! }
//! ```
//!
//! # How a child finds its function: re-executing the current binary
//!
//! The default start method is Python's `spawn`, not `fork`: the parent
//! starts a fresh copy of its own executable (`/proc/self/exe`, which names
//! the very file the parent runs even if it was replaced or deleted on disk)
//! and that copy runs the target. Unlike `fork`, this is safe in a parent
//! with threads: the child starts with one thread and no inherited locks.
//!
//! The child must learn which function to run. Rust has no names for
//! functions at run time, so procq sends the *distance in bytes* between a
//! per-instantiation entry descriptor (for `entry::<F, Args, R>`, which
//! decodes the arguments, calls the target and encodes its result) and a
//! fixed data anchor of procq. Both lie in the same executable image, so the
//! distance is the same in every process that runs that image, whatever
//! address ASLR loads it at. The offset idea is the `procspawn` crate's
//! (mitsuhiko/procspawn, `src/core.rs`), which sends a function's offset.
//! Since the environment and the descriptors come from outside the program,
//! the child checks everything *before* it calls anything (see the `entry`
//! module): it refuses to act on the marker in a setuid/setgid or
//! capability-raised program (`AT_SECURE`), requires the payload to be a
//! memfd sealed against any change, and accepts the offset only if it
//! designates a genuine descriptor — aligned, inside the read-only data of
//! its own loaded image, carrying procq's magic number — whose signature
//! hash equals the parent's. An offset to any other address, such as a
//! function or the middle of one, is an error and never a jump. It also
//! checks that it runs the same file as its parent (device and inode of
//! `/proc/self/exe`) for a clearer message when it does not.
//!
//! The target is any *non-capturing* function or closure `Fn(A, B, ..) -> R`
//! (up to 6 arguments, passed as a tuple as in Python's `args=(..)`). Such
//! a function type has no data, so nothing but its type needs to travel; a
//! capturing closure is rejected at compile time.
//!
//! Why not use procspawn itself: it carries every message over `ipc-channel`
//! (slow on Linux, see the design notes), has no `terminate` (SIGTERM), no
//! daemon children, no exit codes and no timed join that leaves the child
//! running, and it saw its last release in 2024. What procq needs of it is
//! the function-offset idea, a few dozen lines.
//!
//! # The protocol
//!
//! * **Arguments** travel in a `memfd` (an anonymous in-memory file): the
//!   parent writes the header and the postcard-encoded arguments and seals
//!   it (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), the
//!   child checks the seals and reads it with `pread`. There is no size limit and the parent never
//!   blocks on a child that does not read. Queues serialize as their names
//!   and deserialize by opening them, so they arrive as working handles.
//! * **Outcome**: a pipe from child to parent carries framed messages:
//!   *started* (arguments decoded: the parent may now drop the queue handles
//!   it kept alive for the child), then *returned* (the encoded return
//!   value), *panicked* (the panic message and location) or *failed* (why the
//!   target could not run).
//! * Both descriptors reach the child by number in the environment variable
//!   `PROCQ_PROCESS_CHILD`; they are close-on-exec everywhere except in that
//!   one child, so no other program inherits them.
//! * **Waiting** uses a `pidfd` (Linux ≥ 5.3) polled together with the
//!   pipe, so [`Process::join_timeout`] wakes at the exact moment the child
//!   exits; without pidfd it falls back to polling every 10 ms.
//!
//! # What a program must do: call [`init`] first in `main`
//!
//! A re-executed child starts at `main` like any program. [`init`] sees the
//! marker variable, runs the target and exits, so the rest of `main` never
//! runs in the child. Whatever `main` does *before* `init()` runs in every
//! child too, so call it first. Forgetting it is caught, never a fork bomb
//! or a hang:
//! - a parent that never called `init()` gets
//!   [`ProcessError::NotInitialized`] from [`Process::start`];
//! - a child whose `main` did not call `init()` (say, it is called only on
//!   some path) cannot start processes of its own: `start` sees the marker,
//!   reports to the parent and fails; the parent's `join` returns
//!   [`ProcessError::NotDispatched`] with an explanation. A child that
//!   exits without ever running its target gets the same error.
//!
//! Under `cargo test` the harness owns `main`: put [`test_support!`] at the
//! root of each test file that starts processes (see there).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::entry::{self, Descriptor};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Environment variable that marks a re-executed child:
/// `1:<payload fd>:<result fd>`.
const MARKER: &str = "PROCQ_PROCESS_CHILD";
/// Version of the marker and payload format.
const PROTOCOL: u32 = 2;
/// Name of the hidden test [`test_support!`] defines.
const TEST_ENTRY: &str = "__procq_child";
/// Poll interval when no pidfd is available.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// Exit code of a child whose target panicked (Rust's convention).
const EXIT_PANIC: i32 = 101;
/// Exit code of a child that could not run its target.
const EXIT_FAILED: i32 = 2;

// Frame tags, child → parent.
const FRAME_STARTED: u8 = 1;
const FRAME_RETURNED: u8 = 2;
const FRAME_PANICKED: u8 = 3;
const FRAME_FAILED: u8 = 4;
const FRAME_NOT_DISPATCHED: u8 = 5;

/// Set by [`init`] (or by [`test_support!`]'s constructor).
static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// Module path of the test file that used [`test_support!`], if any.
static TEST_MODULE: OnceLock<&'static str> = OnceLock::new();
/// The result pipe while this process runs a target (−1 otherwise); lets the
/// panic hook report under `panic = "abort"`, where nothing unwinds.
static RESULT_FD: AtomicI32 = AtomicI32::new(-1);
/// The real stdout while a test-mode child keeps libtest's header quiet.
static SAVED_STDOUT: AtomicI32 = AtomicI32::new(-1);

thread_local! {
    /// Message and location of the last panic on this thread, recorded by
    /// the hook procq installs in a child (the unwind payload alone has no
    /// location).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Makes this program able to start [`Process`]es; call it first in `main`.
///
/// In a process started by [`Process::start`] it does not return: it runs
/// the target function and exits with 0 (returned), 101 (panicked) or 2
/// (could not run the target). Everywhere else it only records that it was
/// called. Calling it more than once is harmless.
///
/// ```
/// fn child_pid() -> u32 {
///     std::process::id()
/// }
///
/// fn main() {
///     procq::init(); // before anything else: children start here too
///     // ... the program, which may now start procq::Process children
///     let mut p = procq::Process::spawn(child_pid, ()).unwrap();
///     assert_ne!(p.join().unwrap(), std::process::id());
/// }
/// ```
pub fn init() {
    INITIALIZED.store(true, Ordering::SeqCst);
    let Some(marker) = std::env::var_os(MARKER) else {
        return;
    };
    // Remove the marker so that our own children (and any program the target
    // runs) do not take it for theirs. At the top of main there are no other
    // threads to race with this; under test_support the harness's main
    // thread is parked waiting for the one test.
    std::env::remove_var(MARKER);
    restore_stdout();
    if entry::privileged_exec() {
        // setuid, setgid or file capabilities: the environment (and the
        // descriptors it names) come from a less privileged user.
        eprintln!(
            "procq: refusing {MARKER} in a program started with raised privileges \
             (setuid/setgid/capabilities, AT_SECURE); use the fork start method there"
        );
        std::process::exit(EXIT_FAILED);
    }
    let code = run_child(&marker);
    // `exit` flushes stdout; destructors of the target's locals have run.
    std::process::exit(code);
}

/// Enables [`Process`] in an integration-test file run by libtest.
///
/// Use it once, at the root of the test file:
///
/// ```no_run
/// // tests/my_test.rs
/// procq::test_support!();
///
/// #[test]
/// fn runs_in_a_child() {
///     fn child() -> u32 {
///         std::process::id()
///     }
///     let mut p = procq::Process::spawn(child, ()).unwrap();
///     let limit = std::time::Duration::from_secs(10);
///     assert_ne!(p.join_timeout(limit).unwrap(), std::process::id());
/// }
/// # fn main() {}
/// ```
///
/// (A doc example cannot run libtest; `tests/process.rs` of this crate is
/// the working example.)
///
/// It expands to two items:
/// - a hidden test `__procq_child` that calls [`init`]: children are started
///   as `<test binary> __procq_child --exact --nocapture --test-threads=1 -q`,
///   so libtest runs only that test, which runs the target;
/// - a constructor in `.init_array` (what the `ctor` crate does, in a few
///   lines) that tells procq, before libtest's `main` runs, that this binary
///   is a test binary, so that [`Process::start`] adds those arguments. It
///   stores a `&'static str` and, in a child, points stdout at `/dev/null`
///   until [`init`] runs, to hide libtest's `running 1 test` header; no code
///   of the tests runs before `main`.
///
/// In a normal run `__procq_child` passes at once.
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __procq_child() {
            $crate::init();
        }

        #[used]
        #[unsafe(link_section = ".init_array")]
        static __PROCQ_TEST_SUPPORT: extern "C" fn() = {
            extern "C" fn __procq_test_support() {
                $crate::__enable_test_mode(::core::module_path!());
            }
            __procq_test_support
        };
    };
}

#[doc(hidden)]
/// Called by [`test_support!`]'s constructor; not for direct use.
pub fn __enable_test_mode(module_path: &'static str) {
    let _ = TEST_MODULE.set(module_path);
    INITIALIZED.store(true, Ordering::SeqCst);
    if std::env::var_os(MARKER).is_some() {
        // A child: libtest will print its "running 1 test" header before
        // the dispatching test runs. Send that to /dev/null; `init` puts the
        // real stdout back before the target runs.
        // SAFETY: plain descriptor calls on descriptors this process owns.
        unsafe {
            let saved = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if saved >= 0 && null >= 0 && libc::dup2(null, 1) == 1 {
                SAVED_STDOUT.store(saved, Ordering::SeqCst);
            } else if saved >= 0 {
                libc::close(saved);
            }
            if null >= 0 {
                libc::close(null);
            }
        }
    }
}

/// Restores the stdout that [`__enable_test_mode`] silenced.
fn restore_stdout() {
    let saved = SAVED_STDOUT.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        let _ = io::stdout().flush();
        // SAFETY: `saved` is the descriptor we duplicated and own.
        unsafe {
            libc::dup2(saved, 1);
            libc::close(saved);
        }
    }
}

/// A function a [`Process`] can run: any non-capturing function or closure
/// of up to 6 arguments, given as a tuple (`()`, `(a,)`, `(a, b)`, …).
///
/// Implemented for every `F: Fn(A1, .., An) -> R + Copy + Send + 'static`;
/// [`Process::new`] additionally requires `F` to be zero-sized (a function
/// item or a closure that captures nothing), which is checked at compile
/// time.
///
/// ```
/// fn add(a: u32, b: u32) -> u32 { a + b }
/// assert_eq!(procq::Target::call(add, (2, 3)), 5);
/// ```
pub trait Target<Args, R>: Copy + Send + 'static {
    /// Calls the function with the arguments unpacked from the tuple.
    fn call(self, args: Args) -> R;
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> Target<($($arg,)*), Ret> for Func
        where
            Func: Fn($($arg),*) -> Ret + Copy + Send + 'static,
        {
            #[allow(non_snake_case, clippy::unused_unit)]
            fn call(self, ($($arg,)*): ($($arg,)*)) -> Ret {
                self($($arg),*)
            }
        }
    };
}
impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);

/// How a [`Process`] is started.
///
/// ```
/// assert_eq!(procq::StartMethod::default(), procq::StartMethod::Spawn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary (Python's `spawn`): safe with threads.
    #[default]
    Spawn,
    /// `fork()` without `exec` (Python's `fork`); see [`Process::fork`].
    Fork,
}

/// Why starting, waiting for or running a [`Process`] failed.
///
/// A child's failure always reaches the parent: its panic message, its exit
/// code or the signal that killed it.
///
/// ```
/// use std::time::Duration;
///
/// fn boom() { panic!("boom") }
///
/// fn main() {
///     procq::init();
///     let mut p = procq::Process::spawn(boom, ()).unwrap();
///     match p.join_timeout(Duration::from_secs(30)) {
///         Err(procq::ProcessError::Panicked { message, .. }) => assert!(message.contains("boom")),
///         other => panic!("unexpected {other:?}"),
///     }
///     assert_eq!(p.exit_code(), Some(101));
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// This program did not call [`init`] (or, in a test file, use
    /// [`test_support!`]) before starting a process.
    #[error(
        "procq::init() was not called: call it on the first line of main() \
         (in test files, add procq::test_support!()) before starting a Process"
    )]
    NotInitialized,
    /// The child ran its `main` instead of its target: `main` does not call
    /// [`init`] first (or not on every path).
    #[error("process {pid} did not run its target: {detail}")]
    NotDispatched {
        /// The child's process id.
        pid: u32,
        /// What the child reported, or how it ended.
        detail: String,
    },
    /// The target panicked.
    #[error("process {pid} panicked: {message}")]
    Panicked {
        /// The child's process id.
        pid: u32,
        /// The panic message, with its location (`panicked at file:line:col`).
        message: String,
    },
    /// The child exited with a non-zero code without its target returning
    /// (for example `std::process::exit(3)` in the target).
    #[error("process {pid} exited with code {code}")]
    Exited {
        /// The child's process id.
        pid: u32,
        /// The exit code.
        code: i32,
    },
    /// The child was killed by a signal ([`Process::terminate`] sends
    /// SIGTERM = 15, [`Process::kill`] SIGKILL = 9).
    #[error("process {pid} was killed by signal {signal} ({})", signal_name(*signal))]
    Signaled {
        /// The child's process id.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// The child could not run its target (bad arguments, a different
    /// binary, a return value that did not encode).
    #[error("process {pid} failed: {message}")]
    Failed {
        /// The child's process id.
        pid: u32,
        /// What went wrong, as the child reported it.
        message: String,
    },
    /// [`Process::join_timeout`] ran out of time; the child still runs and
    /// may be joined again or killed.
    #[error("process {pid} still running after the join timeout")]
    Timeout {
        /// The child's process id.
        pid: u32,
    },
    /// [`Process::start`] was called twice.
    #[error("process already started")]
    AlreadyStarted,
    /// The process was joined, killed or inspected before it was started.
    #[error("process not started")]
    NotStarted,
    /// The outcome was already taken by an earlier successful `join`.
    #[error("process {pid} was already joined")]
    AlreadyJoined {
        /// The child's process id.
        pid: u32,
    },
    /// The arguments did not encode, or the return value did not decode.
    #[error("{context}: {source}")]
    Codec {
        /// What procq was doing.
        context: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What procq was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> ProcessError {
    move |source| ProcessError::Io { context, source }
}

fn errno(context: &'static str) -> impl FnOnce(Errno) -> ProcessError {
    move |e| ProcessError::Io {
        context,
        source: e.into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// A function running (or about to run) in its own OS process, like
/// Python's `multiprocessing.Process`. `R` is the target's return type,
/// which [`join`](Process::join) hands back.
///
/// ```
/// use procq::{Process, Queue};
///
/// fn producer(q: Queue<Option<String>>) {
///     for i in 0..3 {
///         q.put(&Some(format!("Job-{i}"))).unwrap();
///     }
///     q.put(&None).unwrap(); // stop signal
/// }
///
/// fn consumer(q: Queue<Option<String>>) -> usize {
///     let mut n = 0;
///     while let Some(_job) = q.get().unwrap() {
///         n += 1;
///     }
///     n
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     procq::init();
///     let q = Queue::new(0)?;
///     let mut p1 = Process::new(producer, (q.clone(),));
///     let mut p2 = Process::new(consumer, (q.clone(),));
///     p1.start()?;
///     p2.start()?;
///     p1.join()?;
///     assert_eq!(p2.join()?, 3);
///     Ok(())
/// }
/// ```
///
/// Dropping a `Process` does not stop the child (as in Python): a
/// background thread keeps the arguments alive until the child has opened
/// them and then reaps the child when it exits. Use [`daemon`](Self::daemon)
/// for children that must not outlive their parent.
pub struct Process<R = ()> {
    state: State,
    daemon: bool,
    method: StartMethod,
    test_entry: Option<String>,
    _result: PhantomData<fn() -> R>,
}

enum State {
    /// Not started: the encoded payload (or why it failed to encode) and the
    /// arguments, kept alive until the child has opened its queues.
    Ready {
        descriptor: &'static Descriptor<EntryFn>,
        args: std::result::Result<Vec<u8>, postcard::Error>,
        keep: Box<dyn Any + Send>,
    },
    Running(Running),
    /// `start` was called and failed; nothing runs.
    Broken,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Process");
        match &self.state {
            State::Ready { .. } => d.field("state", &"ready"),
            State::Broken => d.field("state", &"failed to start"),
            State::Running(r) => d.field("pid", &r.pid).field("status", &r.status),
        };
        d.field("daemon", &self.daemon).finish()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// Prepares a process that will run `target(args..)`; nothing starts
    /// until [`start`](Self::start). The arguments are encoded now and kept
    /// (queues stay open) until the child has decoded them.
    ///
    /// `args` is a tuple as in Python's `args=(..)`: `()`, `(x,)`, `(x, y)`.
    /// `target` must not capture anything (a compile-time error otherwise).
    ///
    /// ```
    /// fn hello(name: String) { println!("hello, {name}"); }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::new(hello, ("world".to_owned(),));
    ///     p.start().unwrap();
    ///     p.join().unwrap();
    /// }
    /// ```
    pub fn new<F, Args>(target: F, args: Args) -> Process<R>
    where
        F: Target<Args, R>,
        Args: Serialize + DeserializeOwned + Send + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "procq::Process target must be a function or a closure that captures nothing; \
                 pass data through the args tuple instead"
            )
        };
        let _ = target; // a zero-sized value: the child makes its own
        Process {
            state: State::Ready {
                descriptor: EntryPoint::<F, Args, R>::DESCRIPTOR,
                args: postcard::to_stdvec(&args),
                keep: Box::new(args),
            },
            daemon: false,
            method: StartMethod::Spawn,
            test_entry: None,
            _result: PhantomData,
        }
    }

    /// [`new`](Self::new) then [`start`](Self::start).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(square, (12,)).unwrap();
    ///     assert_eq!(p.join().unwrap(), 144);
    /// }
    /// ```
    pub fn spawn<F, Args>(target: F, args: Args) -> Result<Process<R>, ProcessError>
    where
        F: Target<Args, R>,
        Args: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut p = Process::new(target, args);
        p.start()?;
        Ok(p)
    }

    /// Makes the child a daemon: the kernel kills it (SIGKILL) when its
    /// parent dies, however the parent dies (`prctl(PR_SET_PDEATHSIG)`).
    ///
    /// **Caveat**: Linux ties this to the parent *thread* that started the
    /// child, not the process: if that thread exits while the parent process
    /// lives on, the daemon child is killed too. Start daemon children from a
    /// thread that lives as long as they should (such as the main thread).
    ///
    /// ```
    /// fn idle() { std::thread::sleep(std::time::Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::new(idle, ()).daemon(true);
    ///     p.start().unwrap();
    ///     p.kill().unwrap(); // would die with us anyway
    ///     assert!(p.join().is_err());
    /// }
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Starts the child with `fork()` instead of re-executing the binary
    /// (Python's `fork` start method): faster to start, and the child does
    /// not rerun anything before [`init`] (`init` is still required, to
    /// keep one rule for all start methods).
    ///
    /// # Safety
    ///
    /// The calling process must have **exactly one thread** when
    /// [`start`](Self::start) runs. `fork` copies only the calling thread; a
    /// lock held by another thread (the allocator's, stdout's, any `Mutex`)
    /// stays locked forever in the child, which then deadlocks or worse.
    /// Libraries start threads behind your back, and the test harness runs
    /// tests in threads: if in doubt, use the default start method.
    /// Other hazards: the child shares the parent's open files (and file
    /// offsets) and buffered-but-unflushed output of other handles.
    ///
    /// ```
    /// fn id() -> u32 { std::process::id() }
    ///
    /// fn main() {
    ///     procq::init();
    ///     // SAFETY: this program has a single thread.
    ///     let mut p = unsafe { procq::Process::new(id, ()).fork() };
    ///     p.start().unwrap();
    ///     assert_eq!(p.join().unwrap(), p.pid().unwrap());
    /// }
    /// ```
    pub unsafe fn fork(mut self) -> Self {
        self.method = StartMethod::Fork;
        self
    }

    /// The start method this process uses.
    ///
    /// ```
    /// fn f() {}
    /// assert_eq!(procq::Process::new(f, ()).start_method(), procq::StartMethod::Spawn);
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    #[doc(hidden)]
    /// Test hook: in a test binary, run the child through the libtest test
    /// `name` instead of [`test_support!`]'s dispatcher (to exercise a
    /// child whose "main" forgets `init`).
    pub fn __test_entry(mut self, name: &str) -> Self {
        self.test_entry = Some(name.to_owned());
        self
    }

    /// Starts the child. Returns once it exists; it runs concurrently.
    ///
    /// Errors: [`ProcessError::NotInitialized`] if [`init`] was not called,
    /// [`ProcessError::AlreadyStarted`], an encoding error of the arguments,
    /// or the OS's refusal to create the process.
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::new(f, ());
    ///     p.start().unwrap();
    ///     assert!(matches!(p.start(), Err(procq::ProcessError::AlreadyStarted)));
    ///     p.join().unwrap();
    /// }
    /// ```
    ///
    /// Forgetting [`init`] is an error, not a fork bomb:
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     // no procq::init() here
    ///     let err = procq::Process::spawn(f, ()).unwrap_err();
    ///     assert!(matches!(err, procq::ProcessError::NotInitialized));
    /// }
    /// ```
    pub fn start(&mut self) -> Result<(), ProcessError> {
        if !matches!(self.state, State::Ready { .. }) {
            return Err(ProcessError::AlreadyStarted);
        }
        if std::env::var_os(MARKER).is_some() {
            // We were started to run a target, but main() ran instead and
            // now wants to start processes: it did not call init() first.
            report_not_dispatched();
            return Err(ProcessError::NotInitialized);
        }
        if !INITIALIZED.load(Ordering::SeqCst) {
            return Err(ProcessError::NotInitialized);
        }
        let State::Ready {
            descriptor,
            args,
            keep,
        } = std::mem::replace(&mut self.state, State::Broken)
        else {
            unreachable!("checked above")
        };
        let args = args.map_err(|source| ProcessError::Codec {
            context: "encoding the process arguments",
            source,
        })?;
        let running = match self.method {
            StartMethod::Spawn => self.start_spawn(descriptor, &args, keep)?,
            StartMethod::Fork => self.start_fork(descriptor, &args, keep)?,
        };
        self.state = State::Running(running);
        Ok(())
    }

    fn start_spawn(
        &self,
        descriptor: &'static Descriptor<EntryFn>,
        args: &[u8],
        keep: Box<dyn Any + Send>,
    ) -> Result<Running, ProcessError> {
        let exe = exe_path();
        let identity = exe_identity(&exe).map_err(io_err("inspecting the current executable"))?;
        let payload = payload(identity, descriptor.offset(), descriptor.signature(), args)
            .map_err(|source| ProcessError::Codec {
                context: "encoding the process header",
                source,
            })?;
        let memfd = entry::sealed_payload(&payload)
            .map_err(io_err("writing the process arguments to a sealed memfd"))?;
        let (reader, writer) = result_pipe()?;

        let mut cmd = Command::new(&exe);
        let argv0 = std::env::args_os()
            .next()
            .unwrap_or_else(|| exe.clone().into());
        cmd.arg0(argv0);
        match TEST_MODULE.get() {
            Some(module) => {
                // libtest owns main: run only the dispatching test.
                let name = self
                    .test_entry
                    .clone()
                    .unwrap_or_else(|| TEST_ENTRY.to_owned());
                let path = match module.split_once("::") {
                    Some((_crate, rest)) => format!("{rest}::{name}"),
                    None => name,
                };
                cmd.args([
                    path.as_str(),
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ]);
            }
            // Code before init() runs in the child too: let it see the same
            // arguments as in the parent.
            None => {
                cmd.args(std::env::args_os().skip(1));
            }
        }
        let memfd_raw = memfd.as_raw_fd();
        let writer_raw = writer.as_raw_fd();
        cmd.env(MARKER, format!("{PROTOCOL}:{memfd_raw}:{writer_raw}"))
            .stdin(Stdio::null());
        let daemon = self.daemon;
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec and only
        // makes raw system calls (fcntl, prctl, getppid): async-signal-safe,
        // no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                for fd in [memfd_raw, writer_raw] {
                    // Keep exactly these two descriptors across exec.
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if daemon {
                    become_daemon(parent)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err("starting the child process"))?;
        let pid = child.id();
        // Only our waitpid reaps the child; std's handle holds no pipes.
        drop(child);
        drop(writer);
        drop(memfd);
        Ok(Running::new(pid, reader, keep))
    }

    fn start_fork(
        &self,
        descriptor: &'static Descriptor<EntryFn>,
        args: &[u8],
        keep: Box<dyn Any + Send>,
    ) -> Result<Running, ProcessError> {
        let (reader, writer) = result_pipe()?;
        // Anything buffered would be written twice, once by each process.
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        let parent = rustix::process::getpid();
        // SAFETY: the caller of `Process::fork` promised that this process
        // has one thread, so the child inherits no lock held by another.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(ProcessError::Io {
                context: "fork",
                source: io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            drop(reader);
            let code = if self.daemon && become_daemon(parent).is_err() {
                EXIT_FAILED
            } else {
                // The payload is already in memory and the entry function is
                // ours: no header to check.
                let mut reporter = Reporter(writer);
                install_panic_hook(&reporter);
                (descriptor.entry())(&mut reporter, args)
            };
            let _ = io::stdout().flush();
            let _ = io::stderr().flush();
            // SAFETY: `_exit` ends the process without running the parent's
            // atexit handlers or destructors a second time.
            unsafe { libc::_exit(code) }
        }
        drop(writer);
        Ok(Running::new(pid as u32, reader, keep))
    }
}

impl<R> Process<R> {
    /// The child's process id, once started (Python's `p.pid`).
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::new(f, ());
    ///     assert_eq!(p.pid(), None);
    ///     p.start().unwrap();
    ///     assert!(p.pid().is_some());
    ///     p.join().unwrap();
    /// }
    /// ```
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            State::Running(r) => Some(r.pid),
            _ => None,
        }
    }

    /// Whether the child has started and not yet exited (Python's
    /// `p.is_alive()`). Reaps the child if it has exited.
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::new(f, ());
    ///     assert!(!p.is_alive());
    ///     p.start().unwrap();
    ///     p.join().unwrap();
    ///     assert!(!p.is_alive());
    /// }
    /// ```
    pub fn is_alive(&mut self) -> bool {
        match &mut self.state {
            State::Running(r) => {
                let _ = r.poll_exit();
                r.status.is_none()
            }
            _ => false,
        }
    }

    /// Python's `p.exitcode`: `None` while running (or never started), the
    /// exit code once exited, `-N` if killed by signal `N`.
    ///
    /// ```
    /// fn fail() { std::process::exit(3) }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(fail, ()).unwrap();
    ///     assert!(matches!(p.join(), Err(procq::ProcessError::Exited { code: 3, .. })));
    ///     assert_eq!(p.exit_code(), Some(3));
    /// }
    /// ```
    pub fn exit_code(&mut self) -> Option<i32> {
        let status = self.exit_status()?;
        status.code().or_else(|| status.signal().map(|s| -s))
    }

    /// The child's exit status, once it has exited.
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(f, ()).unwrap();
    ///     p.join().unwrap();
    ///     assert!(p.exit_status().unwrap().success());
    /// }
    /// ```
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        match &mut self.state {
            State::Running(r) => {
                let _ = r.poll_exit();
                r.status
            }
            _ => None,
        }
    }

    /// Sends SIGTERM (Python's `p.terminate()`); a child that has already
    /// exited is left alone. Join afterwards to reap it.
    ///
    /// ```
    /// fn idle() { std::thread::sleep(std::time::Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(idle, ()).unwrap();
    ///     p.terminate().unwrap();
    ///     assert!(matches!(p.join(), Err(procq::ProcessError::Signaled { signal: 15, .. })));
    ///     assert_eq!(p.exit_code(), Some(-15));
    /// }
    /// ```
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::TERM)
    }

    /// Sends SIGKILL (Python's `p.kill()`); a child that has already exited
    /// is left alone. Join afterwards to reap it.
    ///
    /// ```
    /// fn idle() { std::thread::sleep(std::time::Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(idle, ()).unwrap();
    ///     p.kill().unwrap();
    ///     assert!(matches!(p.join(), Err(procq::ProcessError::Signaled { signal: 9, .. })));
    /// }
    /// ```
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::KILL)
    }

    fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        let State::Running(r) = &mut self.state else {
            return Err(ProcessError::NotStarted);
        };
        r.poll_exit()?;
        if r.status.is_some() {
            return Ok(());
        }
        // The pid cannot have been reused: the child is not reaped yet (only
        // `Running` reaps it, and it has not), so it is ours, maybe a zombie.
        rustix::process::kill_process(r.rustix_pid(), signal)
            .map_err(errno("sending a signal to the child"))
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// Waits for the child to exit and returns its target's return value
    /// (Python's `p.join()`, which however does not report failures).
    ///
    /// Errors carry what happened in the child: [`ProcessError::Panicked`]
    /// with the panic message, [`ProcessError::Exited`] with a non-zero exit
    /// code, [`ProcessError::Signaled`] with the signal, and
    /// [`ProcessError::NotDispatched`] if the child's `main` never ran the
    /// target. A second `join` after a successful one returns
    /// [`ProcessError::AlreadyJoined`]; after a failed one, the same kind of
    /// error again.
    ///
    /// ```
    /// fn answer() -> String { "42".into() }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(answer, ()).unwrap();
    ///     assert_eq!(p.join().unwrap(), "42");
    ///     assert!(matches!(p.join(), Err(procq::ProcessError::AlreadyJoined { .. })));
    /// }
    /// ```
    pub fn join(&mut self) -> Result<R, ProcessError> {
        self.join_until(None)
    }

    /// [`join`](Self::join) with a time limit: [`ProcessError::Timeout`] if
    /// the child still runs after `timeout` (it keeps running; join again or
    /// kill it).
    ///
    /// ```
    /// use std::time::Duration;
    /// fn idle() { std::thread::sleep(Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(idle, ()).unwrap();
    ///     let err = p.join_timeout(Duration::from_millis(50)).unwrap_err();
    ///     assert!(matches!(err, procq::ProcessError::Timeout { .. }));
    ///     assert!(p.is_alive());
    ///     p.kill().unwrap();
    ///     assert!(p.join_timeout(Duration::from_secs(10)).is_err());
    /// }
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, ProcessError> {
        self.join_until(Some(Instant::now() + timeout))
    }

    /// [`join`](Self::join) until a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// fn f() -> u8 { 7 }
    ///
    /// fn main() {
    ///     procq::init();
    ///     let mut p = procq::Process::spawn(f, ()).unwrap();
    ///     assert_eq!(p.join_deadline(Instant::now() + Duration::from_secs(30)).unwrap(), 7);
    /// }
    /// ```
    pub fn join_deadline(&mut self, deadline: Instant) -> Result<R, ProcessError> {
        self.join_until(Some(deadline))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<R, ProcessError> {
        let State::Running(r) = &mut self.state else {
            return Err(ProcessError::NotStarted);
        };
        if !r.wait(deadline)? {
            return Err(ProcessError::Timeout { pid: r.pid });
        }
        r.outcome()
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let State::Running(r) = &mut self.state else {
            return;
        };
        let _ = r.poll_exit();
        if r.status.is_some() {
            return;
        }
        // Python leaves a dropped Process running; so do we, but the child
        // may not have opened its queues yet (the kept handles must live on)
        // and should not stay a zombie. A thread waits for it.
        let mut r = std::mem::replace(r, Running::detached());
        let _ = std::thread::Builder::new()
            .name(format!("procq-reap-{}", r.pid))
            .spawn(move || {
                let _ = r.wait(None);
            });
    }
}

// ---------------------------------------------------------------- parent side

/// A started child: its pid, the read end of its result pipe, and what has
/// been read from it.
struct Running {
    pid: u32,
    /// Readable when the child has exited (`None`: no pidfd support).
    pidfd: Option<OwnedFd>,
    /// Read end of the result pipe (non-blocking); `None` after EOF.
    pipe: Option<OwnedFd>,
    /// Bytes read but not yet parsed into frames.
    buf: Vec<u8>,
    frames: Vec<(u8, Vec<u8>)>,
    /// The arguments, kept until the child reports that it decoded them.
    keep: Option<Box<dyn Any + Send>>,
    status: Option<ExitStatus>,
    /// The outcome was handed out by a successful `join`.
    taken: bool,
}

impl Running {
    fn new(pid: u32, pipe: OwnedFd, keep: Box<dyn Any + Send>) -> Running {
        let pidfd = Pid::from_raw(pid as i32).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        Running {
            pid,
            pidfd,
            pipe: Some(pipe),
            buf: Vec::new(),
            frames: Vec::new(),
            keep: Some(keep),
            status: None,
            taken: false,
        }
    }

    /// An empty stand-in left behind when a dropped process's state moves to
    /// its reaper thread.
    fn detached() -> Running {
        Running {
            pid: 0,
            pidfd: None,
            pipe: None,
            buf: Vec::new(),
            frames: Vec::new(),
            keep: None,
            status: Some(ExitStatus::from_raw(0)),
            taken: true,
        }
    }

    fn rustix_pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32).expect("child pid is positive")
    }

    /// Reads whatever the pipe holds without blocking.
    fn drain(&mut self) {
        let Some(pipe) = &self.pipe else { return };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match rustix::io::read(pipe, &mut chunk) {
                Ok(0) => {
                    self.pipe = None;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::INTR) => continue,
                // EAGAIN: nothing more for now. Any other error: the pipe is
                // unusable; what the child sent so far is all we get.
                Err(Errno::AGAIN) => break,
                Err(_) => {
                    self.pipe = None;
                    break;
                }
            }
        }
        // Split complete frames: tag (1 byte), length (8 bytes LE), body.
        let mut at = 0;
        while self.buf.len() - at >= 9 {
            let len = u64::from_le_bytes(self.buf[at + 1..at + 9].try_into().unwrap());
            let Some(end) = usize::try_from(len)
                .ok()
                .and_then(|l| (at + 9).checked_add(l))
            else {
                break;
            };
            if end > self.buf.len() {
                break;
            }
            let tag = self.buf[at];
            if tag == FRAME_STARTED {
                // The child holds its own handles now.
                self.keep = None;
            }
            self.frames.push((tag, self.buf[at + 9..end].to_vec()));
            at = end;
        }
        self.buf.drain(..at);
    }

    /// Reaps the child if it has exited; never blocks.
    fn poll_exit(&mut self) -> Result<(), ProcessError> {
        self.drain();
        if self.status.is_some() {
            return Ok(());
        }
        match rustix::process::waitpid(Some(self.rustix_pid()), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => {
                self.status = Some(ExitStatus::from_raw(status.as_raw()));
                // Everything the child wrote before exiting is in the pipe.
                self.drain();
                self.pidfd = None;
                self.keep = None;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(Errno::INTR) => Ok(()),
            Err(e) => Err(ProcessError::Io {
                context: "waiting for the child (was SIGCHLD set to SIG_IGN?)",
                source: e.into(),
            }),
        }
    }

    /// Waits until the child exits (`Ok(true)`) or the deadline passes
    /// (`Ok(false)`), reading its messages meanwhile so that a large return
    /// value never blocks it.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<bool, ProcessError> {
        loop {
            self.poll_exit()?;
            if self.status.is_some() {
                return Ok(true);
            }
            let now = Instant::now();
            let mut wait = match deadline {
                Some(d) if d <= now => return Ok(false),
                Some(d) => Some(d - now),
                None => None,
            };
            if self.pidfd.is_none() {
                wait = Some(wait.map_or(POLL_SLICE, |w| w.min(POLL_SLICE)));
            }
            let timeout = wait.map(|w| Timespec {
                tv_sec: w.as_secs() as _,
                tv_nsec: w.subsec_nanos() as _,
            });
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = &self.pidfd {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &self.pipe {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if fds.is_empty() {
                std::thread::sleep(wait.unwrap_or(POLL_SLICE));
                continue;
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(ProcessError::Io {
                        context: "waiting for the child",
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Turns what the exited child sent and its exit status into the result
    /// of `join`.
    fn outcome<R: DeserializeOwned>(&mut self) -> Result<R, ProcessError> {
        let pid = self.pid;
        if self.taken {
            return Err(ProcessError::AlreadyJoined { pid });
        }
        let status = self.status.expect("outcome after exit");
        let text = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
        let started = self.frames.iter().any(|(t, _)| *t == FRAME_STARTED);
        for (tag, body) in &self.frames {
            match *tag {
                FRAME_PANICKED => {
                    return Err(ProcessError::Panicked {
                        pid,
                        message: text(body),
                    })
                }
                FRAME_FAILED => {
                    return Err(ProcessError::Failed {
                        pid,
                        message: text(body),
                    })
                }
                FRAME_NOT_DISPATCHED => {
                    return Err(ProcessError::NotDispatched {
                        pid,
                        detail: text(body),
                    })
                }
                _ => {}
            }
        }
        if let Some(signal) = status.signal() {
            return Err(ProcessError::Signaled { pid, signal });
        }
        let code = status.code().unwrap_or(-1);
        if !started {
            return Err(ProcessError::NotDispatched {
                pid,
                detail: format!(
                    "it exited with code {code} without running its target; \
                     does main() call procq::init() on its first line?"
                ),
            });
        }
        if code != 0 {
            return Err(ProcessError::Exited { pid, code });
        }
        // A target that ended with `exit(0)` sent no value: that is fine for
        // `()` (which decodes from nothing), an error for anything else.
        let body = self
            .frames
            .iter()
            .find(|(t, _)| *t == FRAME_RETURNED)
            .map_or(&[][..], |(_, b)| b.as_slice());
        let value = postcard::from_bytes(body).map_err(|source| ProcessError::Codec {
            context: "decoding the child's return value (did the target exit early?)",
            source,
        })?;
        self.taken = true;
        self.frames.clear();
        Ok(value)
    }
}

fn result_pipe() -> Result<(OwnedFd, OwnedFd), ProcessError> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(errno("creating the result pipe"))?;
    rustix::io::ioctl_fionbio(&reader, true)
        .map_err(errno("making the result pipe non-blocking"))?;
    Ok((reader, writer))
}

/// Runs in the pre-exec (or forked) child: die with the parent thread, and
/// do not start at all if the parent is already gone.
fn become_daemon(parent: Pid) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before prctl: then we were reparented and
    // no signal will ever come.
    if rustix::process::getppid() != Some(parent) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// The program file: `/proc/self/exe` names exactly the image we run, even
/// if the file was replaced on disk since.
fn exe_path() -> std::path::PathBuf {
    let proc = std::path::PathBuf::from("/proc/self/exe");
    if proc.exists() {
        proc
    } else {
        std::env::current_exe().unwrap_or(proc)
    }
}

fn exe_identity(path: &std::path::Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

// ----------------------------------------------------------------- child side

/// Monomorphized entry point: `(result pipe, encoded args) -> exit code`.
type EntryFn = fn(&mut Reporter, &[u8]) -> i32;

/// The descriptor of `entry::<F, Args, R>` (see the `entry` module): a
/// promoted constant in the image's read-only data.
struct EntryPoint<F, Args, R>(PhantomData<fn(F, Args) -> R>);

impl<F, Args, R> EntryPoint<F, Args, R>
where
    F: Target<Args, R>,
    Args: DeserializeOwned,
    R: Serialize,
{
    const DESCRIPTOR: &'static Descriptor<EntryFn> =
        &Descriptor::new(signature::<F, Args, R>, entry::<F, Args, R>);
}

/// Sent ahead of the arguments in the memfd.
#[derive(Serialize, Deserialize)]
struct Header {
    protocol: u32,
    /// Device and inode of the parent's executable.
    exe: (u64, u64),
    /// Offset of [`child_main_address`]'s function from the anchor: equal in
    /// parent and child exactly when both run the same image.
    check: i64,
    /// Offset of the entry's [`Descriptor`] from the anchor.
    descriptor: i64,
    /// Hash of the entry's type signature.
    signature: u64,
}

/// The payload the parent writes: header, then the encoded arguments.
fn payload(
    exe: (u64, u64),
    descriptor: i64,
    signature: u64,
    args: &[u8],
) -> Result<Vec<u8>, postcard::Error> {
    let header = Header {
        protocol: PROTOCOL,
        exe,
        check: entry::offset_of_address(child_main_address()),
        descriptor,
        signature,
    };
    let mut payload = postcard::to_stdvec(&header)?;
    payload.extend_from_slice(args);
    Ok(payload)
}

#[doc(hidden)]
/// Test hook: a child payload as [`Process::start`] writes it for `target`,
/// or, with `forged_address`, one that points the child at that address
/// instead of a genuine entry descriptor (to test that it refuses).
pub fn __process_payload<F, Args, R>(
    target: F,
    args: Args,
    forged_address: Option<usize>,
) -> Vec<u8>
where
    F: Target<Args, R>,
    Args: Serialize + DeserializeOwned,
    R: Serialize,
{
    let _ = target;
    let d = EntryPoint::<F, Args, R>::DESCRIPTOR;
    let offset = forged_address.map_or_else(|| d.offset(), entry::offset_of_address);
    let exe = exe_identity(&exe_path()).unwrap_or((0, 0));
    let args = postcard::to_stdvec(&args).expect("test arguments encode");
    payload(exe, offset, d.signature(), &args).expect("header encodes")
}

fn child_main_address() -> usize {
    run_child as fn(&std::ffi::OsStr) -> i32 as usize
}

/// FNV-1a of the type names of target, arguments and return value.
fn signature<F, Args, R>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in [
        std::any::type_name::<F>(),
        std::any::type_name::<Args>(),
        std::any::type_name::<R>(),
    ] {
        for b in name.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The child's end of the result pipe.
struct Reporter(OwnedFd);

impl Reporter {
    fn send(&mut self, tag: u8, body: &[u8]) {
        let mut frame = Vec::with_capacity(9 + body.len());
        frame.push(tag);
        frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
        frame.extend_from_slice(body);
        let mut rest = &frame[..];
        while !rest.is_empty() {
            match rustix::io::write(&self.0, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                // The parent may be gone (EPIPE): nobody is left to tell.
                Err(_) => return,
            }
        }
    }

    fn fail(&mut self, message: &str) -> i32 {
        eprintln!("procq: child process {}: {message}", std::process::id());
        self.send(FRAME_FAILED, message.as_bytes());
        EXIT_FAILED
    }
}

fn parse_marker(marker: &std::ffi::OsStr) -> Option<(RawFd, RawFd)> {
    let text = marker.to_str()?;
    let mut parts = text.split(':');
    let version: u32 = parts.next()?.parse().ok()?;
    let payload = parts.next()?.parse().ok()?;
    let result = parts.next()?.parse().ok()?;
    (version == PROTOCOL && parts.next().is_none()).then_some((payload, result))
}

/// Takes ownership of an inherited descriptor after checking it is open.
fn adopt(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open and was handed to this process for
    // exactly this use; nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Our own children must not inherit it.
    let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
    Some(owned)
}

/// Everything the child does in [`init`]; returns its exit code.
fn run_child(marker: &std::ffi::OsStr) -> i32 {
    let Some((payload_fd, result_fd)) = parse_marker(marker) else {
        eprintln!("procq: malformed {MARKER}={marker:?}; not a procq child");
        return EXIT_FAILED;
    };
    let (Some(payload), Some(result)) = (adopt(payload_fd), adopt(result_fd)) else {
        eprintln!("procq: {MARKER} names descriptors this process does not have");
        return EXIT_FAILED;
    };
    // The result descriptor must be a pipe: nothing else is written to.
    match rustix::fs::fstat(&result) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo => {
        }
        _ => {
            eprintln!("procq: {MARKER} names a result descriptor that is not a pipe");
            return EXIT_FAILED;
        }
    }
    let mut reporter = Reporter(result);
    if let Err(why) = entry::check_payload(&payload) {
        return reporter.fail(&why);
    }
    let payload = File::from(payload);
    let bytes = match payload.metadata().and_then(|m| {
        let mut buf = vec![0; m.len() as usize];
        payload.read_exact_at(&mut buf, 0).map(|()| buf)
    }) {
        Ok(b) => b,
        Err(e) => return reporter.fail(&format!("reading the arguments: {e}")),
    };
    drop(payload);
    let (header, args) = match postcard::take_from_bytes::<Header>(&bytes) {
        Ok(x) => x,
        Err(e) => return reporter.fail(&format!("decoding the process header: {e}")),
    };
    if header.protocol != PROTOCOL {
        return reporter.fail("parent uses another procq protocol version");
    }
    match exe_identity(std::path::Path::new("/proc/self/exe")) {
        Ok(id) if id == header.exe => {}
        Ok(_) => return reporter.fail("the child runs a different executable than its parent"),
        // Without /proc the descriptor check below still guards the call.
        Err(_) => {}
    }
    if header.check != entry::offset_of_address(child_main_address()) {
        return reporter.fail("the child's executable image differs from its parent's");
    }
    // Nothing is called unless the offset designates a genuine entry
    // descriptor of this image with the parent's signature.
    let descriptor = match entry::resolve::<EntryFn>(header.descriptor) {
        Ok(d) => d,
        Err(why) => return reporter.fail(&why),
    };
    if descriptor.signature() != header.signature {
        return reporter.fail("entry function signature mismatch");
    }
    install_panic_hook(&reporter);
    (descriptor.entry())(&mut reporter, args)
}

/// Records each panic's message and location for the parent; under
/// `panic = "abort"` (no unwinding to catch) it reports it right away.
fn install_panic_hook(reporter: &Reporter) {
    RESULT_FD.store(reporter.0.as_raw_fd(), Ordering::SeqCst);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = match info.location() {
            Some(l) => format!("panicked at {l}: {}", panic_text(info.payload())),
            None => format!("panicked: {}", panic_text(info.payload())),
        };
        if cfg!(panic = "abort") {
            let fd = RESULT_FD.load(Ordering::SeqCst);
            if fd >= 0 {
                // SAFETY: the result pipe stays open for the whole life of
                // the child; it is only borrowed (and duplicated) here.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                if let Ok(owned) = fd.try_clone_to_owned() {
                    Reporter(owned).send(FRAME_PANICKED, message.as_bytes());
                }
            }
        }
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        previous(info); // still print it on the child's stderr
    }));
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

fn entry<F, Args, R>(reporter: &mut Reporter, args: &[u8]) -> i32
where
    F: Target<Args, R>,
    Args: DeserializeOwned,
    R: Serialize,
{
    let args: Args = match postcard::from_bytes(args) {
        Ok(a) => a,
        Err(e) => return reporter.fail(&format!("decoding the arguments: {e}")),
    };
    // Queues in `args` are open: the parent may let go of its copies.
    reporter.send(FRAME_STARTED, &[]);
    // SAFETY: `F` is zero-sized (asserted in `Process::new`) and `Copy`: its
    // value has no bytes, and the parent owned one, so this is the bitwise
    // copy of the parent's value that a `Copy` type permits.
    let target: F = unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.call(args))) {
        Ok(value) => match postcard::to_stdvec(&value) {
            Ok(bytes) => {
                reporter.send(FRAME_RETURNED, &bytes);
                0
            }
            Err(e) => reporter.fail(&format!("encoding the return value: {e}")),
        },
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| panic_text(payload.as_ref()).to_owned());
            reporter.send(FRAME_PANICKED, message.as_bytes());
            EXIT_PANIC
        }
    }
}

/// `Process::start` in a child whose `main` did not call [`init`]: tell the
/// parent why its target never ran.
fn report_not_dispatched() {
    let Some(marker) = std::env::var_os(MARKER) else {
        return;
    };
    let message = "this process was started by procq::Process to run a target function, \
                   but main() ran instead and tried to start a Process: call procq::init() \
                   on the first line of main() (in test files: procq::test_support!())";
    eprintln!("procq: {message}");
    let Some((_, result_fd)) = parse_marker(&marker) else {
        return;
    };
    // Only write to the descriptor if it is really a pipe.
    // SAFETY: fstat into a zeroed struct; the descriptor is only inspected.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    if unsafe { libc::fstat(result_fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO
    {
        return;
    }
    // SAFETY: an open pipe handed to this process for exactly these reports;
    // borrowed, not closed.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(result_fd) };
    if let Ok(owned) = fd.try_clone_to_owned() {
        Reporter(owned).send(FRAME_NOT_DISPATCHED, message.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parsing_rejects_garbage() {
        assert_eq!(parse_marker("2:5:6".as_ref()), Some((5, 6)));
        for bad in ["", "2:5", "1:5:6", "2:5:6:7", "2:x:6", "a:b:c"] {
            assert_eq!(parse_marker(bad.as_ref()), None, "{bad}");
        }
    }

    #[test]
    fn signatures_differ_by_type() {
        fn a(_: u32) {}
        fn b(_: u64) {}
        assert_ne!(
            signature::<fn(u32), (u32,), ()>(),
            signature::<fn(u64), (u64,), ()>()
        );
        let _ = (a, b);
    }

    #[test]
    fn adopt_refuses_closed_and_standard_descriptors() {
        assert!(adopt(1).is_none());
        assert!(adopt(987_654).is_none());
    }

    #[test]
    fn start_before_init_is_an_error() {
        // Unit tests neither call init() nor use test_support!.
        if INITIALIZED.load(Ordering::SeqCst) {
            return;
        }
        fn f() {}
        let err = Process::spawn(f, ()).unwrap_err();
        assert!(matches!(err, ProcessError::NotInitialized), "{err}");
        assert!(err.to_string().contains("procq::init()"));
    }
}
