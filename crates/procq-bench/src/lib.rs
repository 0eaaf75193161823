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

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod case;
mod harness;
mod model;
mod plot;
mod stats;
mod suite;
mod table;
mod targets;
mod units;
mod worker;

pub use model::{CaseError, Latency, Machine, Memory, Report, Target, TargetResult, Throughput};
pub use worker::{run_worker_if_requested, WORKER_ARG};

/// What to run and how long.
///
/// ```
/// let quick = procq_bench::Options::quick();
/// assert!(quick.quick && quick.filter.is_none());
/// assert!(!procq_bench::Options::default().quick);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A few thousand items per case, one run each: seconds in total.
    pub quick: bool,
    /// Only cases whose id contains this substring (ids look like
    /// `throughput/procq/1p1c/8B/bounded`; see [`case_ids`]).
    pub filter: Option<String>,
    /// Measured runs per case (median reported); default 1 quick, 3 full.
    pub runs: Option<usize>,
    /// Binary to re-execute for worker processes; default the running one,
    /// which must call [`run_worker_if_requested`] first thing in `main`.
    pub worker_exe: Option<PathBuf>,
}

impl Options {
    /// Quick mode, every case.
    ///
    /// ```
    /// assert!(procq_bench::Options::quick().quick);
    /// ```
    pub fn quick() -> Options {
        Options {
            quick: true,
            ..Options::default()
        }
    }

    fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.quick { 1 } else { 3 }).max(1)
    }
}

/// An item type as the suite sends it.
///
/// ```
/// use procq_bench::Item;
/// assert_eq!(Item::U64.label(), "8 B");
/// assert_eq!(Item::Bytes(1 << 20).label(), "1 MiB");
/// assert_eq!(Item::Bytes(100).nominal_bytes(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// A `u64` (postcard: a varint of 1 to 10 bytes; counted as 8 B).
    U64,
    /// A `Vec<u8>` of this many bytes (postcard: varint length + bytes).
    Bytes(usize),
}

impl Item {
    /// The item sizes of the suite, smallest first.
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::ALL.len(), 5);
    /// ```
    pub const ALL: [Item; 5] = [
        Item::U64,
        Item::Bytes(100),
        Item::Bytes(4096),
        Item::Bytes(65536),
        Item::Bytes(1 << 20),
    ];

    /// Payload bytes per item, as counted in bytes/s (8 for a `u64`).
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::U64.nominal_bytes(), 8);
    /// ```
    pub fn nominal_bytes(self) -> u64 {
        match self {
            Item::U64 => 8,
            Item::Bytes(n) => n as u64,
        }
    }

    /// Human-readable size: `8 B`, `100 B`, `4 KiB`, `64 KiB`, `1 MiB`.
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::Bytes(4096).label(), "4 KiB");
    /// ```
    pub fn label(self) -> String {
        let n = self.nominal_bytes();
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            format!("{} MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            format!("{} KiB", n >> 10)
        } else {
            format!("{n} B")
        }
    }

    /// The size as it appears in case ids: `8B`, `100B`, `4KiB`, ...
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::Bytes(65536).id(), "64KiB");
    /// ```
    pub fn id(self) -> String {
        self.label().replace(' ', "")
    }

    /// Byte value filling a `Bytes` payload (anything but zero, so that no
    /// page of it can stay a shared zero page).
    pub(crate) fn fill_byte(self) -> u8 {
        0xa5
    }
}

/// What is being measured.
///
/// ```
/// assert_eq!(procq_bench::System::IpcChannel.to_string(), "ipc-channel");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// procq's typed `Queue<T>` between processes.
    Procq,
    /// A Unix stream socket, 4-byte length + item, one `write` per item.
    Socket,
    /// servo's ipc-channel (`IpcBytesSender`) between processes.
    IpcChannel,
    /// crossbeam-channel between two threads of one process.
    Crossbeam,
    /// `memcpy` of the item's bytes between two reused, page-aligned
    /// buffers, in one thread.
    Memcpy,
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Procq => "procq",
            System::Socket => "socket",
            System::IpcChannel => "ipc-channel",
            System::Crossbeam => "crossbeam",
            System::Memcpy => "memcpy",
        })
    }
}

/// Progress of a run, for a status line.
///
/// ```
/// let p = procq_bench::Progress::Started { case: "memory/procq".into(), index: 0, total: 1 };
/// assert_eq!(p.to_string(), "[1/1] memory/procq ...");
/// ```
#[derive(Debug, Clone)]
pub enum Progress {
    /// A case is starting.
    Started {
        /// Case id.
        case: String,
        /// Position of the case, from 0.
        index: usize,
        /// Number of cases in this run.
        total: usize,
    },
    /// A case finished; `summary` is its headline figure.
    Finished {
        /// Case id.
        case: String,
        /// Headline figure, e.g. `2.31 M items/s`.
        summary: String,
    },
    /// A case failed (also recorded in [`Report::errors`]).
    Failed {
        /// Case id.
        case: String,
        /// What went wrong.
        error: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Started { case, index, total } => {
                write!(f, "[{}/{total}] {case} ...", index + 1)
            }
            Progress::Finished { case, summary } => write!(f, "      {case}: {summary}"),
            Progress::Failed { case, error } => write!(f, "      {case}: FAILED: {error}"),
        }
    }
}

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
    case::all_cases().iter().map(case::Case::id).collect()
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
