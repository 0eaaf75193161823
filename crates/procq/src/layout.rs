//! The shared-memory header: what lives where, and how state commits.
//!
//! ```text
//! offset 0        Header (this module), < 64 KiB
//!   identity      magic, layout version, type fingerprint, kind, limits
//!   lock          robust pthread mutex + owner pid          (own cache line)
//!   state[2]      double-buffered committed state           (own cache lines)
//!   items/space/done  futex event counts                    (one cache line each)
//!   counters      approximate statistics
//!   slots[1024]   attached processes: pid, start time, taken tasks
//! offset 64 KiB   data area: the ring (see `ring`), up to `max_capacity` bytes
//! ```
//!
//! # Commit protocol
//!
//! Every field that must change together (ring head/tail/count, unfinished
//! tasks, totals, the journal) lives in [`State`]. A mutation copies the
//! committed state into the other buffer, edits it there, and publishes it
//! with one store of [`Header::current`]. A process killed at any instant
//! leaves either the old or the new state, never a mix: the lock's next
//! holder (which gets `EOWNERDEAD`) finds a consistent queue. Item bytes are
//! written before the commit that makes them reachable, so a killed `put` is
//! invisible and a killed `get` leaves the item in place.
//!
//! The one thing outside `State` that must follow a commit is the per-slot
//! count of tasks a process has taken. The commit records that intent in the
//! journal (`slot`, `op`, `gen`); the slot word stores the last generation it
//! applied. Recovery replays a journal entry whose generation the slot has
//! not seen: exactly-once without a second lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ring::Ring;
use crate::sync::{EventCount, RobustMutex};

/// "PROCQ", a NUL, "Q", then the byte 1.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PROCQ\0Q\x01");
/// Bumped whenever the layout changes incompatibly.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Attached processes one queue can track at once.
pub(crate) const MAX_SLOTS: usize = 1024;
/// Where the data area starts (a multiple of every page size in use).
pub(crate) const DATA_OFFSET: u64 = 64 * 1024;
const _: () = assert!(std::mem::size_of::<Header>() as u64 <= DATA_OFFSET);

/// Which API created the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A plain [`Queue`](crate::Queue).
    Queue = 1,
    /// A [`JoinableQueue`](crate::JoinableQueue) with task accounting.
    Joinable = 2,
}

impl Kind {
    pub(crate) fn from_raw(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Queue),
            2 => Some(Kind::Joinable),
            _ => None,
        }
    }
}

/// Header flag: the queue outlives its processes (see `Builder::persistent`).
pub(crate) const FLAG_PERSISTENT: u32 = 1;

/// Journal operations (see the module docs); 0 means none.
/// A `get` on a joinable queue: the slot took one task.
pub(crate) const OP_TAKE: u64 = 1;
/// A `task_done` credited to the slot.
pub(crate) const OP_DONE: u64 = 2;
/// A dead or departed slot's tasks were written off; the slot is cleared.
pub(crate) const OP_RECLAIM: u64 = 3;

/// The committed, double-buffered state of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Ring bookkeeping.
    pub(crate) ring: Ring,
    /// Items put and not yet marked done (joinable queues; equals the
    /// number of items in flight for plain queues' statistics).
    pub(crate) unfinished: u64,
    /// Commit counter.
    pub(crate) gen: u64,
    /// Journal: slot index + 1 (0 = none).
    pub(crate) journal_slot: u64,
    /// Journal: one of the `OP_*` constants.
    pub(crate) journal_op: u64,
    /// Journal: generation of the commit that wrote the entry.
    pub(crate) journal_gen: u64,
    /// Journal: how many tasks the operation moves.
    pub(crate) journal_arg: u64,
    /// Items put since creation.
    pub(crate) put_items: u64,
    /// Payload bytes put since creation.
    pub(crate) put_bytes: u64,
    /// Items got since creation.
    pub(crate) got_items: u64,
    /// Payload bytes got since creation.
    pub(crate) got_bytes: u64,
    /// When the ring last became empty (`CLOCK_MONOTONIC`, ns; 0 = not
    /// empty since). The ring shrinks only after staying empty a while, so a
    /// queue that drains and refills constantly keeps its memory.
    pub(crate) empty_since: u64,
}

/// Storage for one [`State`]: plain atomics so that a hostile or crashing
/// writer can never cause a data race in the Rust sense.
#[repr(C, align(64))]
pub(crate) struct StateCell {
    /// Fields in the order of [`StateCell::load`].
    words: [AtomicU64; 16],
}

impl StateCell {
    pub(crate) fn load(&self) -> State {
        let w = |i: usize| self.words[i].load(Ordering::Relaxed);
        State {
            ring: Ring {
                head: w(0),
                tail: w(1),
                cap: w(2),
                count: w(3),
            },
            unfinished: w(4),
            gen: w(5),
            journal_slot: w(6),
            journal_op: w(7),
            journal_gen: w(8),
            put_items: w(9),
            put_bytes: w(10),
            got_items: w(11),
            got_bytes: w(12),
            empty_since: w(13),
            journal_arg: w(14),
        }
    }

    pub(crate) fn store(&self, s: &State) {
        let vals = [
            s.ring.head,
            s.ring.tail,
            s.ring.cap,
            s.ring.count,
            s.unfinished,
            s.gen,
            s.journal_slot,
            s.journal_op,
            s.journal_gen,
            s.put_items,
            s.put_bytes,
            s.got_items,
            s.got_bytes,
            s.empty_since,
            s.journal_arg,
        ];
        for (w, v) in self.words.iter().zip(vals) {
            w.store(v, Ordering::Relaxed);
        }
    }
}

/// One attached process.
#[repr(C)]
pub(crate) struct Slot {
    /// Process id, 0 when the slot is free. Written last when claiming.
    pub(crate) pid: AtomicU32,
    /// Reserved.
    _reserved: AtomicU32,
    /// Start time of the process (see `liveness`).
    pub(crate) start_time: AtomicU64,
    /// Low 32 bits: tasks taken and not yet done; high 32 bits: the low 32
    /// bits of the last journal generation applied. One word, one store.
    pub(crate) tasks: AtomicU64,
    /// Threads of this process blocked in put/get/join (statistics).
    pub(crate) waiting: AtomicU64,
}

/// Monotonic statistics, updated without the lock (approximate).
#[repr(C, align(64))]
pub(crate) struct Counters {
    /// Times a `put` had to wait.
    pub(crate) blocked_puts: AtomicU64,
    /// Times a `get` had to wait.
    pub(crate) blocked_gets: AtomicU64,
    /// Waits that ended in a timeout.
    pub(crate) timeouts: AtomicU64,
    /// Times the lock was recovered from a dead holder.
    pub(crate) recoveries: AtomicU64,
    /// Dead processes whose slots were reclaimed.
    pub(crate) reclaimed: AtomicU64,
}

/// The header at offset 0 of every queue segment.
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`], stored last during creation: nonzero means initialized.
    pub(crate) magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub(crate) version: AtomicU32,
    /// `size_of::<Header>()` as the creator saw it.
    pub(crate) header_size: AtomicU32,
    /// Item type fingerprint (0 = untyped).
    pub(crate) fingerprint: AtomicU64,
    /// [`Kind`] as a number.
    pub(crate) kind: AtomicU32,
    /// `FLAG_*` bits.
    pub(crate) flags: AtomicU32,
    /// Item bound; 0 = unbounded.
    pub(crate) maxsize: AtomicU64,
    /// Capacity the ring starts with and shrinks back to.
    pub(crate) min_capacity: AtomicU64,
    /// Largest capacity the ring may grow to (size of the data area).
    pub(crate) max_capacity: AtomicU64,
    /// Offset of the data area ([`DATA_OFFSET`]).
    pub(crate) data_offset: AtomicU64,
    /// Pid of the creator.
    pub(crate) creator_pid: AtomicU32,
    /// Set (under the lock) just before the name is unlinked, so that a
    /// racing `open` refuses rather than joins a dying queue.
    pub(crate) unlinked: AtomicU32,
    /// Creation time, milliseconds since the Unix epoch.
    pub(crate) created_unix_ms: AtomicU64,
    /// The lock protecting `current`, `states`, `slots` and the ring.
    pub(crate) lock: RobustMutex,
    /// Index (0 or 1) of the committed entry of `states`.
    pub(crate) current: AtomicU32,
    /// Double-buffered state.
    pub(crate) states: [StateCell; 2],
    /// Bumped when items arrive; consumers wait here.
    pub(crate) items: EventCount,
    /// Bumped when room appears; producers wait here.
    pub(crate) space: EventCount,
    /// Bumped when the unfinished-task count reaches zero; `join` waits here.
    pub(crate) done: EventCount,
    /// Statistics.
    pub(crate) counters: Counters,
    /// Attached processes.
    pub(crate) slots: [Slot; MAX_SLOTS],
}

impl Header {
    /// Item count of the committed state, read without the lock: a hint for
    /// spinning waiters, never used to decide anything.
    pub(crate) fn peek_count(&self) -> u64 {
        let cur = (self.current.load(Ordering::Acquire) & 1) as usize;
        self.states[cur].words[3].load(Ordering::Relaxed)
    }

    /// The committed state.
    pub(crate) fn state(&self) -> State {
        self.states[(self.current.load(Ordering::Acquire) & 1) as usize].load()
    }

    /// Publishes `s` as the committed state (caller holds the lock).
    pub(crate) fn commit(&self, s: &State) {
        let next = (self.current.load(Ordering::Relaxed) & 1) ^ 1;
        self.states[next as usize].store(s);
        self.current.store(next, Ordering::Release);
    }
}
