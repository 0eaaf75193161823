//! The client side of at-least-once delivery: this handle's identities,
//! request numbering, and which delivered items its threads hold.
//!
//! `task_done()` takes no argument, so the handle remembers, per thread,
//! the ids of the items it handed out, in order. A `task_done` acknowledges
//! the oldest item *the calling thread* got; only a thread that got nothing
//! through this handle (a dispatcher's worker, say) acknowledges the
//! handle's oldest item instead. So threads that share a handle and each
//! finish what they got never acknowledge each other's items, and an item
//! a thread abandoned comes back when the process dies (the README's
//! "threads" rule; the acknowledgement itself is by id, see `task_done.lua`).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;

/// A new id, unique across hosts, processes and handles.
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS: unique across hosts and processes.
    let random =
        std::collections::hash_map::RandomState::new().hash_one(COUNTER.load(Ordering::Relaxed));
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        random,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A delivered item of a joinable queue: the number of the get request
/// that took it and its index there (see `common.lua`); `(0, 0)` on a
/// plain queue.
pub(crate) type Id = (u64, u64);

/// Per-process identity and bookkeeping of a handle: a forked child starts
/// afresh, so parent and child never share an in-flight hash, a request
/// number or a held item.
pub(crate) struct Ids {
    pid: u32,
    pub(crate) consumer: String,
    pub(crate) producer: String,
    /// Last put sequence number used.
    pub(crate) put_seq: u64,
    /// The put that failed last, as (sequence number, hash of its items):
    /// a retry with the same items reuses the number.
    pub(crate) failed_put: Option<(u64, u64)>,
    /// Last get request number used.
    get_seq: u64,
    /// Get requests whose reply was lost: the next get replays one.
    lost_gets: Vec<u64>,
    /// Items handed out and not yet acknowledged, oldest first, with the
    /// thread that got each.
    held: VecDeque<(ThreadId, Id)>,
}

impl Ids {
    pub(crate) fn new() -> Ids {
        Ids {
            pid: std::process::id(),
            consumer: unique_id(),
            producer: unique_id(),
            put_seq: 0,
            failed_put: None,
            get_seq: 0,
            lost_gets: Vec::new(),
            held: VecDeque::new(),
        }
    }

    /// Starts afresh in a forked child.
    pub(crate) fn check_pid(&mut self) {
        if self.pid != std::process::id() {
            *self = Ids::new();
        }
    }

    /// The number for the next get request: that of a request whose reply
    /// was lost, if any (the server answers it with that request's items),
    /// else a new one.
    pub(crate) fn next_get(&mut self) -> u64 {
        if let Some(seq) = self.lost_gets.pop() {
            return seq;
        }
        self.get_seq += 1;
        self.get_seq
    }

    /// Records that request `seq` may have run without its reply arriving.
    pub(crate) fn get_lost(&mut self, seq: u64) {
        self.lost_gets.push(seq);
    }

    /// Records items handed out to the calling thread.
    pub(crate) fn hand_out(&mut self, ids: impl IntoIterator<Item = Id>) {
        let me = std::thread::current().id();
        self.held.extend(ids.into_iter().map(|id| (me, id)));
    }

    /// Takes the `n` items a `task_done` of the calling thread acknowledges:
    /// its own oldest first, then (a thread that got fewer) the handle's
    /// oldest. `None`, taking nothing, if fewer than `n` are held.
    pub(crate) fn take_for_ack(&mut self, n: usize) -> Option<Vec<(ThreadId, Id)>> {
        if n > self.held.len() {
            return None;
        }
        let me = std::thread::current().id();
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        while out.len() < n && i < self.held.len() {
            if self.held[i].0 == me {
                out.extend(self.held.remove(i));
            } else {
                i += 1;
            }
        }
        while out.len() < n {
            out.extend(self.held.pop_front());
        }
        Some(out)
    }

    /// Puts back items whose acknowledgement failed (oldest first).
    pub(crate) fn unacknowledge(&mut self, items: Vec<(ThreadId, Id)>) {
        for item in items.into_iter().rev() {
            self.held.push_front(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_acknowledges_its_own_items_first() {
        let mut ids = Ids::new();
        let other = std::thread::spawn(|| std::thread::current().id())
            .join()
            .unwrap();
        let me = std::thread::current().id();
        let id = |n| (1, n);
        ids.held
            .extend([(other, id(1)), (me, id(2)), (other, id(3)), (me, id(4))]);
        assert_eq!(ids.take_for_ack(1), Some(vec![(me, id(2))]));
        assert_eq!(ids.take_for_ack(2), Some(vec![(me, id(4)), (other, id(1))]));
        assert_eq!(ids.take_for_ack(2), None);
        let got = ids.take_for_ack(1).unwrap();
        assert_eq!(got, [(other, id(3))]);
        ids.unacknowledge(got);
        assert_eq!(ids.held, [(other, id(3))]);
        ids.hand_out([id(5), id(6)]);
        assert_eq!(ids.held, [(other, id(3)), (me, id(5)), (me, id(6))]);
    }

    #[test]
    fn lost_gets_are_replayed_first() {
        let mut ids = Ids::new();
        assert_eq!(ids.next_get(), 1);
        ids.get_lost(1);
        assert_eq!(ids.next_get(), 1);
        assert_eq!(ids.next_get(), 2);
    }
}
