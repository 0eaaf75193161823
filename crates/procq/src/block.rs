//! [`Block`]: how long a call may wait — the one way every backend is told.
//!
//! The public API spells it as method suffixes (`put`, `put_timeout`,
//! `put_deadline`, `put_nowait`) or, for the zero-copy calls of
//! [`RawQueue`](crate::RawQueue), as an `Option<Duration>`
//! ([`Block::from_timeout`]); inside, every operation takes a `Block`.

use std::time::{Duration, Instant};

/// How long a call may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Block {
    /// Fail at once with `Empty`/`Full`.
    No,
    /// Wait as long as it takes.
    Forever,
    /// Wait until this instant (on the monotonic clock).
    Until(Instant),
}

impl Block {
    /// Wait at most `d` from now (forever if that is past what an
    /// `Instant` can hold).
    pub(crate) fn timeout(d: Duration) -> Block {
        Instant::now()
            .checked_add(d)
            .map_or(Block::Forever, Block::Until)
    }

    /// The convention of the zero-copy calls: `None` waits forever, zero
    /// does not wait, anything else is a timeout.
    pub(crate) fn from_timeout(timeout: Option<Duration>) -> Block {
        match timeout {
            None => Block::Forever,
            Some(d) if d.is_zero() => Block::No,
            Some(d) => Block::timeout(d),
        }
    }

    /// The deadline, if the call has one.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Block::Until(d) => Some(d),
            _ => None,
        }
    }
}
