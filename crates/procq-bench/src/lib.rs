//! # procq-bench — the procq benchmark suite
//!
//! Measures procq in one run against the alternatives a user would
//! otherwise pick, with the same items, on the same machine, at the same
//! time:
//!
//! * **throughput** between real OS processes: 1, 2 and 4 producers and as
//!   many consumers, items of 8 B (`u64`), 100 B, 4 KiB, 64 KiB and 1 MiB
//!   (`Vec<u8>`), bounded (`maxsize` 1024) and unbounded;
//! * **round-trip latency**: ping-pong of `u64`s over two queues between
//!   two processes (p50, p99, p99.9), idle and with more busy processes
//!   than cores;
//! * **batching**: `put_many`/`get_many` against `put`/`get` for 8 B items;
//! * **memory**: what an idle queue keeps resident, and what an unbounded
//!   queue keeps after 1 GiB was put and drained;
//! * **baselines**: a Unix socket carrying length-prefixed items with one
//!   write per item (how a pipe-based queue such as Python's
//!   `multiprocessing.Queue` moves items), servo's `ipc-channel` between
//!   processes, `crossbeam-channel` between two threads (the in-process
//!   ceiling), and `memcpy` of the item between two cache-warm buffers
//!   (the ceiling for copying an item once);
//! * the **targets** of the "Performance" issue, each marked met or not.
//!
//! The result is a [`Report`]: an aligned table ([`Report::to_table`]),
//! JSON (it implements `Serialize`), and an SVG chart
//! ([`Report::write_svg`]).
//!
//! ## Method
//!
//! * Workers are real processes: the running binary re-executes itself with
//!   a hidden first argument (see [`run_worker_if_requested`]), so the
//!   suite needs nothing but its own executable.
//! * A run is timed on the consumer side, end to end: from the moment the
//!   parent tells every (already started and connected) worker to go, to
//!   the moment the last consumer has its last item, on `CLOCK_MONOTONIC`,
//!   which all processes share. Process start-up is never timed.
//! * Consumers checksum what they get; a lost or duplicated item fails the
//!   case.
//! * Full mode warms each case up with a short run, which also calibrates
//!   the item count so that each measured run lasts about a second, then
//!   reports the median of three runs. Quick mode does one short run per
//!   case: a smoke test, not a measurement.
//! * Every queue the suite creates is named `bench-<pid>-<n>`; at the end
//!   the suite checks `/dev/shm` for any that survived (and removes them),
//!   reporting them in [`Report::leaked_segments`].
//!
//! ```
//! // Cases that need no worker processes run anywhere, even in a doctest;
//! // the others need a binary that calls `run_worker_if_requested`.
//! let opts = procq_bench::Options {
//!     filter: Some("throughput/crossbeam/1p1c/8B".into()),
//!     ..procq_bench::Options::quick()
//! };
//! let report = procq_bench::run(&opts, &mut |p| eprintln!("{p}"));
//! assert!(report.errors.is_empty());
//! println!("{}", report.to_table());
//! ```

#![warn(missing_docs)]

mod case;
mod cli;
mod ctx;
mod flows;
mod harness;
mod item;
mod model;
mod options;
mod pingpong;
mod plot;
mod stats;
mod suite;
mod system;
mod table;
mod targets;
mod units;
mod worker;

pub use cli::{BenchArgs, EXIT_STATUS};
pub use item::Item;
pub use model::{CaseError, Latency, Machine, Memory, Report, Target, TargetResult, Throughput};
pub use options::{Options, Progress};
pub use system::System;
pub use worker::{run_worker_if_requested, WORKER_ARG};

/// Ids of every case of the suite, in run order; [`Options::filter`]
/// selects among them by substring.
///
/// ```
/// let ids = procq_bench::case_ids();
/// assert!(ids.contains(&"throughput/procq/1p1c/8B/bounded".to_owned()));
/// assert!(ids.contains(&"latency/socket/idle".to_owned()));
/// assert!(ids.contains(&"memory/procq".to_owned()));
/// ```
pub fn case_ids() -> Vec<String> {
    case::case_ids()
}

/// Runs the suite (or the cases selected by [`Options::filter`]) and
/// returns its report. Failures of single cases are recorded in
/// [`Report::errors`]; the rest of the suite still runs.
///
/// ```
/// let opts = procq_bench::Options {
///     filter: Some("throughput/memcpy/1p1c/4KiB".into()),
///     ..procq_bench::Options::quick()
/// };
/// let mut seen = Vec::new();
/// let report = procq_bench::run(&opts, &mut |p| seen.push(p.to_string()));
/// assert_eq!(report.throughput.len(), 1);
/// assert!(report.throughput[0].bytes_per_sec > 0.0);
/// assert_eq!(seen.len(), 2); // started, finished
/// ```
pub fn run(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Report {
    suite::run(opts, progress)
}
