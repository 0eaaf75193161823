//! # procq-process — run a function in a new OS process, like Python's `multiprocessing.Process`
//!
//! ```
//! use procq_process::Process;
//!
//! fn worker(name: String, n: u32) -> String {
//!     format!("{name}: {} from process {}", n * 2, std::process::id())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     procq_process::init(); // first line of main: a re-executed child runs its target here
//!
//!     let mut p = Process::spawn(worker, ("double".to_owned(), 21))?;
//!     assert!(p.join()?.starts_with("double: 42 from process ")); // the return value comes back
//!     Ok(())
//! }
//! ```
//!
//! `procq` re-exports this crate (`procq::Process`, `procq::init`,
//! `procq::test_support!`), and its queues serialize as their names and
//! open themselves in the child, so they can be passed as arguments.
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
//!
//! # Modules
//!
//! ```text
//! lib.rs           this overview and the re-exports
//! parent.rs        Process: start (spawn or fork), signal, join
//!   running.rs     a started child as the parent sees it: pidfd, result pipe, outcome
//! child.rs         init(): the child's checks, its entry point and reports
//!   entry.rs       entry descriptors and the checks that make a forged one harmless
//! protocol.rs      marker, payload header, result frames, exit codes (both sides)
//! target.rs        the Target trait and its signature hash
//! test_support.rs  test_support!: Process inside libtest binaries
//! error.rs         ProcessError
//! ```
//!
//! Imports go downwards only: `parent` uses `child` (a forked child runs the
//! entry directly), `running`, `protocol`, `target`, `entry`; `child` uses
//! `protocol`, `target`, `entry`; `test_support` uses `child`; `protocol`,
//! `target`, `entry` and `error` use nothing of this crate.

#![warn(missing_docs)]

mod child;
mod entry;
mod error;
mod parent;
mod protocol;
mod running;
mod target;
mod test_support;

pub use child::init;
pub use error::ProcessError;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use parent::__process_payload;
pub use parent::{Process, StartMethod};
pub use target::Target;
#[doc(hidden)]
pub use test_support::__enable_test_mode;
