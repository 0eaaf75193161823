//! What the cases of one run share: the run's context (worker binary,
//! mode, fresh names), how a case is repeated and its item count
//! calibrated, and the run's named resources (socket paths, ring files)
//! that remove themselves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::Result;
use crate::item::Item;

/// State shared by the cases of one run.
pub(crate) struct Ctx {
    pub(crate) exe: PathBuf,
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) prefix: String,
    pub(crate) counter: AtomicU64,
}

impl Ctx {
    /// A fresh name for a queue or socket of this run.
    pub(crate) fn fresh(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Time limit for one run of a case.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(if self.quick { 60 } else { 120 })
    }
}

/// Seconds a measured run should last in full mode.
pub(crate) const TARGET_SECS: f64 = 1.0;
/// Most bytes one run moves: bounds what an unbounded queue can pile up.
pub(crate) const MAX_RUN_BYTES: u64 = 2 << 30;
/// Most items one run moves.
pub(crate) const MAX_RUN_ITEMS: u64 = 50_000_000;

/// Items per run in quick mode (and for the warm-up run of full mode).
pub(crate) fn quick_items(item: Item) -> u64 {
    (32u64 << 20)
        .div_ceil(item.nominal_bytes())
        .clamp(16, 5_000)
}

/// Runs `once(n)` (returning seconds) as the mode asks: quick, one run of
/// the quick count; full, a warm-up run that calibrates `n`, then `runs`
/// measured runs. Returns the item count of the measured runs and their
/// results.
pub(crate) fn repeat<T>(
    ctx: &Ctx,
    quick_n: u64,
    max_n: u64,
    seconds: impl Fn(&T) -> f64,
    mut once: impl FnMut(u64) -> Result<T>,
) -> Result<(u64, Vec<T>)> {
    let n = if ctx.quick {
        quick_n
    } else {
        let warm = once(quick_n)?;
        let rate = quick_n as f64 / seconds(&warm).max(1e-9);
        ((rate * TARGET_SECS) as u64).clamp(quick_n, max_n.max(quick_n))
    };
    let mut out = Vec::with_capacity(ctx.runs);
    for _ in 0..ctx.runs {
        out.push(once(n)?);
    }
    Ok((n, out))
}

/// A socket path for this run, removed on drop.
pub(crate) struct SocketPath(PathBuf);

impl SocketPath {
    pub(crate) fn new(ctx: &Ctx) -> SocketPath {
        SocketPath(std::env::temp_dir().join(format!("procq-{}.sock", ctx.fresh())))
    }

    pub(crate) fn as_string(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A file of this run in `/dev/shm` (an ipmpsc ring), removed on drop.
pub(crate) struct ShmFile(PathBuf);

impl ShmFile {
    pub(crate) fn new(ctx: &Ctx) -> ShmFile {
        ShmFile(PathBuf::from(format!("/dev/shm/{}-ipmpsc", ctx.fresh())))
    }

    pub(crate) fn as_string(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_counts_stay_small() {
        for item in Item::ALL {
            let n = quick_items(item);
            assert!((16..=5_000).contains(&n));
            assert!(n * item.nominal_bytes() <= 40 << 20);
        }
    }
}
