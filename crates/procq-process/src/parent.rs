//! The parent side: [`Process`], which starts a child (re-executing this
//! program, or `fork`), hands it its target and arguments, and waits for
//! what it reports (see `protocol` and `running`).

use std::any::Any;
use std::fmt;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::{self, EntryFn, EntryPoint, Reporter, INITIALIZED};
use crate::entry::{self, Descriptor};
use crate::error::{errno, io_err, ProcessError};
use crate::protocol::{self, exe_identity, Header, EXIT_FAILED, MARKER, PROTOCOL};
use crate::running::Running;
use crate::target::Target;
use crate::test_support::{TEST_ENTRY, TEST_MODULE};
#[cfg(doc)]
use crate::{init, test_support};

/// How a [`Process`] is started.
///
/// ```
/// assert_eq!(procq_process::StartMethod::default(), procq_process::StartMethod::Spawn);
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

/// A function running (or about to run) in its own OS process, like
/// Python's `multiprocessing.Process`. `R` is the target's return type,
/// which [`join`](Process::join) hands back.
///
/// ```
/// use procq_process::Process;
///
/// fn count_words(text: String) -> usize {
///     text.split_whitespace().count()
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     procq_process::init();
///     let mut p1 = Process::new(count_words, ("one two three".to_owned(),));
///     let mut p2 = Process::new(count_words, ("four five".to_owned(),));
///     p1.start()?;
///     p2.start()?;
///     assert_eq!(p1.join()? + p2.join()?, 5);
///     Ok(())
/// }
/// ```
///
/// With `procq`, queues go in the arguments too (`procq::Queue` serializes
/// as its name and opens itself in the child): see the `procq` crate.
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::new(hello, ("world".to_owned(),));
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
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(square, (12,)).unwrap();
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::new(idle, ()).daemon(true);
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
    ///     procq_process::init();
    ///     // SAFETY: this program has a single thread.
    ///     let mut p = unsafe { procq_process::Process::new(id, ()).fork() };
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
    /// assert_eq!(procq_process::Process::new(f, ()).start_method(), procq_process::StartMethod::Spawn);
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// Test hook (feature `testing`): in a test binary, run the child
    /// through the libtest test `name` instead of
    /// [`test_support!`](crate::test_support)'s dispatcher (to exercise a
    /// child whose "main" forgets `init`).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn __test_entry(mut self, name: &str) -> Self {
        self.test_entry = Some(name.to_owned());
        self
    }

    /// Starts the child. Returns once it exists; it runs concurrently.
    ///
    /// # Errors
    ///
    /// [`ProcessError::NotInitialized`] if [`init`] was not called,
    /// [`ProcessError::AlreadyStarted`], [`ProcessError::Codec`] if the
    /// arguments do not encode, or [`ProcessError::Io`] if the OS refuses
    /// to create the process.
    ///
    /// ```
    /// fn f() {}
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::new(f, ());
    ///     p.start().unwrap();
    ///     assert!(matches!(p.start(), Err(procq_process::ProcessError::AlreadyStarted)));
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
    ///     // no procq_process::init() here
    ///     let err = procq_process::Process::spawn(f, ()).unwrap_err();
    ///     assert!(matches!(err, procq_process::ProcessError::NotInitialized));
    /// }
    /// ```
    pub fn start(&mut self) -> Result<(), ProcessError> {
        if !matches!(self.state, State::Ready { .. }) {
            return Err(ProcessError::AlreadyStarted);
        }
        if std::env::var_os(MARKER).is_some() {
            // We were started to run a target, but main() ran instead and
            // now wants to start processes: it did not call init() first.
            child::report_not_dispatched();
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
        let header = Header {
            protocol: PROTOCOL,
            exe: identity,
            check: child::image_check(),
            descriptor: descriptor.offset(),
            signature: descriptor.signature(),
        };
        let payload = protocol::payload(&header, args).map_err(|source| ProcessError::Codec {
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
                child::install_panic_hook(&reporter);
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::new(f, ());
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::new(f, ());
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(fail, ()).unwrap();
    ///     assert!(matches!(p.join(), Err(procq_process::ProcessError::Exited { code: 3, .. })));
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(f, ()).unwrap();
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
    /// # Errors
    ///
    /// [`ProcessError::NotStarted`]; [`ProcessError::Io`] if the signal
    /// cannot be sent.
    ///
    /// ```
    /// fn idle() { std::thread::sleep(std::time::Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(idle, ()).unwrap();
    ///     p.terminate().unwrap();
    ///     assert!(matches!(p.join(), Err(procq_process::ProcessError::Signaled { signal: 15, .. })));
    ///     assert_eq!(p.exit_code(), Some(-15));
    /// }
    /// ```
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::TERM)
    }

    /// Sends SIGKILL (Python's `p.kill()`); a child that has already exited
    /// is left alone. Join afterwards to reap it.
    ///
    /// # Errors
    ///
    /// As [`terminate`](Self::terminate).
    ///
    /// ```
    /// fn idle() { std::thread::sleep(std::time::Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(idle, ()).unwrap();
    ///     p.kill().unwrap();
    ///     assert!(matches!(p.join(), Err(procq_process::ProcessError::Signaled { signal: 9, .. })));
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
    /// # Errors
    ///
    /// They carry what happened in the child: [`ProcessError::Panicked`]
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
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(answer, ()).unwrap();
    ///     assert_eq!(p.join().unwrap(), "42");
    ///     assert!(matches!(p.join(), Err(procq_process::ProcessError::AlreadyJoined { .. })));
    /// }
    /// ```
    pub fn join(&mut self) -> Result<R, ProcessError> {
        self.join_until(None)
    }

    /// [`join`](Self::join) with a time limit: [`ProcessError::Timeout`] if
    /// the child still runs after `timeout` (it keeps running; join again or
    /// kill it).
    ///
    /// # Errors
    ///
    /// [`ProcessError::Timeout`], and those of [`join`](Self::join).
    ///
    /// ```
    /// use std::time::Duration;
    /// fn idle() { std::thread::sleep(Duration::from_secs(60)) }
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(idle, ()).unwrap();
    ///     let err = p.join_timeout(Duration::from_millis(50)).unwrap_err();
    ///     assert!(matches!(err, procq_process::ProcessError::Timeout { .. }));
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
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// fn f() -> u8 { 7 }
    ///
    /// fn main() {
    ///     procq_process::init();
    ///     let mut p = procq_process::Process::spawn(f, ()).unwrap();
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

/// Test hook (feature `testing`): a child payload as [`Process::start`]
/// writes it for `target`, or, with `forged_address`, one that points the
/// child at that address instead of a genuine entry descriptor (to test
/// that it refuses).
#[cfg(feature = "testing")]
#[doc(hidden)]
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
    let header = Header {
        protocol: PROTOCOL,
        exe: exe_identity(&exe_path()).unwrap_or((0, 0)),
        check: child::image_check(),
        descriptor: forged_address.map_or_else(|| d.offset(), entry::offset_of_address),
        signature: d.signature(),
    };
    let args = postcard::to_stdvec(&args).expect("test arguments encode");
    protocol::payload(&header, &args).expect("header encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

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
