//! What a caller asks of a run ([`Options`]) and what the run tells it
//! while it goes ([`Progress`]).

use std::fmt;
use std::path::PathBuf;

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
    /// Only cases whose id contains this substring, or one of several
    /// separated by commas (ids look like `throughput/procq/1p1c/8B/bounded`;
    /// see [`case_ids`](crate::case_ids)).
    pub filter: Option<String>,
    /// Measured runs per case (median reported); default 1 quick, 3 full.
    pub runs: Option<usize>,
    /// Binary to re-execute for worker processes; default the running one,
    /// which must call [`run_worker_if_requested`](crate::run_worker_if_requested) first thing in `main`.
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

    pub(crate) fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.quick { 1 } else { 3 }).max(1)
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
    /// A case failed (also recorded in [`Report::errors`](crate::Report::errors)).
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

/// Whether `filter` (substrings separated by commas) selects the case `id`.
pub(crate) fn selects(filter: &str, id: &str) -> bool {
    filter.split(',').any(|f| id.contains(f))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_filter_of_several_substrings_selects_any_of_them() {
        let f = "procq/1p1c/8B/bounded,latency/procq";
        assert!(super::selects(f, "throughput/procq/1p1c/8B/bounded"));
        assert!(super::selects(f, "latency/procq/idle"));
        assert!(!super::selects(f, "throughput/procq/4p4c/8B/bounded"));
        assert!(super::selects("8B", "throughput/socket/1p1c/8B"));
    }
}
