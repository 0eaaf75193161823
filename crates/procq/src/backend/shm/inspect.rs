//! Read-outs of shared-memory queues: statistics, listing, removal and
//! garbage collection (the shared-memory side of `procq::stats`,
//! `procq::list`, `procq::remove` and `procq::collect_garbage`).
//!
//! Inspection maps a queue without joining it: the inspecting process is
//! not counted as a user and does not keep the queue alive.

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::stats::Stats;

use super::layout::*;
use super::locked::{within, LOCK_PATIENCE};
use super::segment::{self, Segment};
use super::shared::Shared;

/// A point-in-time read-out of a queue (see `inspect`).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) state: State,
    /// `(put_items, put_bytes, got_items, got_bytes)`, summed over processes.
    pub(crate) traffic: [u64; 4],
    pub(crate) attached: usize,
    pub(crate) dead: usize,
    pub(crate) resident_bytes: u64,
    pub(crate) persistent: bool,
    pub(crate) created_unix_ms: u64,
    pub(crate) fingerprint: u64,
    pub(crate) max_capacity: u64,
    pub(crate) blocked_puts: u64,
    pub(crate) blocked_gets: u64,
    pub(crate) timeouts: u64,
    pub(crate) recoveries: u64,
    pub(crate) reclaimed: u64,
}

impl Shared {
    /// Reclaims dead processes' slots; removes the queue if nobody live
    /// uses it and it is not persistent. Returns whether it was removed.
    pub(crate) fn collect_if_orphaned(&self) -> Result<bool> {
        let mut g = self.lock()?;
        g.sweep();
        let h = self.header();
        let persistent = h.flags.load(Ordering::Relaxed) & FLAG_PERSISTENT != 0;
        if persistent || h.slots.iter().any(|s| s.pid.load(Ordering::Relaxed) != 0) {
            return Ok(false);
        }
        g.retire_name()
    }

    /// Removes the queue's name (`procq::remove`), whoever uses it, if the
    /// name still refers to this segment; flags the segment as removed so
    /// that racing `open`s refuse it. Returns whether the name was removed
    /// (`false`: it was gone, or names a queue created since).
    pub(crate) fn remove(&self) -> Result<bool> {
        // A queue whose lock cannot be taken (corrupt, or its memory gone)
        // is removed all the same: the lock only orders this against other
        // procq removals of the same segment.
        let _g = self.lock().ok();
        let h = self.header();
        // Unlike the last detacher and `collect_garbage`, an explicit remove
        // also finishes a removal that flagged the segment but did not get
        // to unlink it: the name was looked up and checked just now.
        let removed = self.seg.unlink_if_same(&self.name)?;
        h.unlinked.store(1, Ordering::Relaxed);
        Ok(removed)
    }

    /// Live statistics, for inspection.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let mut g = self.lock_until(within(LOCK_PATIENCE))?;
        g.shrink_if_idle();
        let h = self.header();
        let mut attached = 0;
        let mut dead = 0;
        let mut traffic = h.counters.retired.get();
        for slot in h.slots.iter() {
            for (total, v) in traffic.iter_mut().zip(slot.traffic.get()) {
                *total = total.wrapping_add(v);
            }
            let owner = slot.owner.load(Ordering::Relaxed);
            if owner != 0 {
                let gen = slot.owner_gen.load(Ordering::Relaxed);
                if self.token.is_alive(&h.tokens, owner, gen) {
                    attached += 1;
                } else {
                    dead += 1;
                }
            }
        }
        Ok(Snapshot {
            state: g.state,
            traffic,
            attached,
            dead,
            resident_bytes: self.seg.resident_bytes(),
            persistent: h.flags.load(Ordering::Relaxed) & FLAG_PERSISTENT != 0,
            created_unix_ms: h.created_unix_ms.load(Ordering::Relaxed),
            fingerprint: h.fingerprint.load(Ordering::Relaxed),
            max_capacity: self.max_capacity,
            blocked_puts: h.counters.blocked_puts.load(Ordering::Relaxed),
            blocked_gets: h.counters.blocked_gets.load(Ordering::Relaxed),
            timeouts: h.counters.timeouts.load(Ordering::Relaxed),
            recoveries: h.counters.recoveries.load(Ordering::Relaxed),
            reclaimed: h.counters.reclaimed.load(Ordering::Relaxed),
        })
    }
}

/// The statistics of an attachment (`Stats` fields that concern Redis
/// only are 0).
pub(crate) fn stats_of(shared: &Shared) -> Result<Stats> {
    let snap = shared.snapshot()?;
    let s = snap.state;
    Ok(Stats {
        name: shared.name().to_owned(),
        kind: shared.kind(),
        maxsize: shared.maxsize(),
        items: s.ring.count,
        unfinished_tasks: s.unfinished,
        bytes_used: s.ring.used(),
        capacity_bytes: s.ring.cap,
        max_capacity_bytes: snap.max_capacity,
        resident_bytes: snap.resident_bytes,
        attached_processes: snap.attached,
        dead_processes: snap.dead,
        shutdown: s.shutdown,
        persistent: snap.persistent,
        created_unix_ms: snap.created_unix_ms,
        fingerprint: snap.fingerprint,
        items_put: snap.traffic[0],
        bytes_put: snap.traffic[1],
        items_got: snap.traffic[2],
        bytes_got: snap.traffic[3],
        blocked_puts: snap.blocked_puts,
        blocked_gets: snap.blocked_gets,
        timeouts: snap.timeouts,
        recoveries: snap.recoveries,
        reclaimed_processes: snap.reclaimed,
        deliveries: 0,
        redeliveries: 0,
        dead_letters: 0,
        max_deliveries: 0,
    })
}

/// Statistics of the queue `name`, without attaching to it (see
/// `procq::stats`).
pub(crate) fn stats(name: &str) -> Result<Stats> {
    stats_of(&Shared::inspect(name)?)
}

/// Names of all procq segments in `/dev/shm` (valid or not).
pub(crate) fn list_names() -> Result<Vec<String>> {
    segment::list_names().map_err(|e| Error::io("listing /dev/shm", e))
}

/// Removes the queue `name` at once, whoever uses it (see `procq::remove`).
pub(crate) fn remove(name: &str) -> Result<()> {
    // Only a segment this process may use is removed (never another user's,
    // never through a symbolic link), and only while the name refers to the
    // file that was checked.
    let removed = match Shared::inspect(name) {
        Ok(shared) => shared.remove()?,
        Err(
            e @ (Error::NotFound(_) | Error::PermissionDenied { .. } | Error::InvalidName { .. }),
        ) => return Err(e),
        // Not a usable queue (foreign magic, other version, never
        // initialized): still ours to remove.
        Err(_) => Segment::remove_unusable(name)?,
    };
    if removed {
        Ok(())
    } else {
        Err(Error::NotFound(name.to_owned()))
    }
}

/// Queues removed, and queues skipped with the reason.
pub(crate) type Collected = (Vec<String>, Vec<(String, Error)>);

/// Removes every queue whose processes are all dead (and that is not
/// persistent): returns the names removed, and those skipped with why
/// (see `procq::collect_garbage_report`).
pub(crate) fn collect_garbage() -> Result<Collected> {
    let (mut removed, mut skipped) = (Vec::new(), Vec::new());
    for name in list_names()? {
        // An inspection attachment: its lock waits give up after ~1 s.
        let outcome = Shared::inspect(&name).and_then(|shared| shared.collect_if_orphaned());
        match outcome {
            Ok(true) => removed.push(name),
            Ok(false) => {}
            // Removed meanwhile by someone else: nothing to report.
            Err(Error::NotFound(_)) => {}
            Err(e) => skipped.push((name, e)),
        }
    }
    Ok((removed, skipped))
}
