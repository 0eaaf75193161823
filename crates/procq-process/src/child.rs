//! The child side: [`init`], which a re-executed child runs instead of its
//! `main`, the checks it makes before it calls anything, and the reports it
//! sends its parent (see `protocol`).
//!
//! A child checks everything that came from outside before acting on it:
//! the marker, that both descriptors are open and of the right kind, the
//! sealed payload (`entry::check_payload`), its header (protocol version,
//! same executable, same image) and the entry descriptor the header names
//! (`entry::resolve`, then its signature hash). Only then does it call the
//! entry, which decodes the arguments, says *started*, calls the target and
//! reports its return value or panic.

use std::any::Any;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use rustix::io::Errno;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::entry::{self, Descriptor};
use crate::protocol::{
    exe_identity, frame, parse_marker, Header, EXIT_FAILED, EXIT_PANIC, FRAME_FAILED,
    FRAME_NOT_DISPATCHED, FRAME_PANICKED, FRAME_RETURNED, FRAME_STARTED, MARKER, PROTOCOL,
};
use crate::target::{signature, Target};
#[cfg(doc)]
use crate::Process;

/// Set by [`init`] (or by [`test_support!`](crate::test_support)'s
/// constructor): this program may start processes.
pub(crate) static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// The result pipe while this process runs a target (−1 otherwise); lets the
/// panic hook report under `panic = "abort"`, where nothing unwinds.
static RESULT_FD: AtomicI32 = AtomicI32::new(-1);
/// The real stdout while a test-mode child keeps libtest's header quiet
/// (see `test_support`).
pub(crate) static SAVED_STDOUT: AtomicI32 = AtomicI32::new(-1);

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
///     procq_process::init(); // before anything else: children start here too
///     // ... the program, which may now start procq_process::Process children
///     let mut p = procq_process::Process::spawn(child_pid, ()).unwrap();
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

/// Restores the stdout that test mode silenced (see `test_support`).
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

/// Monomorphized entry point: `(result pipe, encoded args) -> exit code`.
pub(crate) type EntryFn = fn(&mut Reporter, &[u8]) -> i32;

/// The descriptor of `entry::<F, Args, R>` (see the `entry` module): a
/// promoted constant in the image's read-only data.
pub(crate) struct EntryPoint<F, Args, R>(PhantomData<fn(F, Args) -> R>);

impl<F, Args, R> EntryPoint<F, Args, R>
where
    F: Target<Args, R>,
    Args: DeserializeOwned,
    R: Serialize,
{
    pub(crate) const DESCRIPTOR: &'static Descriptor<EntryFn> =
        &Descriptor::new(signature::<F, Args, R>, entry::<F, Args, R>);
}

/// The offset of this image's child dispatcher from the anchor, which the
/// header carries as `check`: equal in parent and child exactly when both
/// run the same image.
pub(crate) fn image_check() -> i64 {
    entry::offset_of_address(run_child as fn(&std::ffi::OsStr) -> i32 as usize)
}

/// The child's end of the result pipe.
pub(crate) struct Reporter(pub(crate) OwnedFd);

impl Reporter {
    fn send(&mut self, tag: u8, body: &[u8]) {
        let frame = frame(tag, body);
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
    if header.check != image_check() {
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
pub(crate) fn install_panic_hook(reporter: &Reporter) {
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
pub(crate) fn report_not_dispatched() {
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
    fn adopt_refuses_closed_and_standard_descriptors() {
        assert!(adopt(1).is_none());
        assert!(adopt(987_654).is_none());
    }
}
