//! The shared-memory header: what lives where, and how state commits.
//!
//! ```text
//! offset 0        Header (this module), < 256 KiB
//!   identity      magic, layout version, type fingerprint, kind, limits
//!   lock line     procq's robust futex lock (owner stamp + waiter bit),
//!                 `current`, the committed state          (one cache line)
//!   spare         scratch state cell of holders without a slot (one line)
//!   items/space/done  futex event counts                    (one cache line each)
//!   counters      approximate statistics
//!   kept          bytes of the data area whose pages an empty ring kept
//!   slots[1024]   attached processes: owner token, pid, taken tasks, last
//!                 journal generation applied, counters (one cache line each)
//!   loans[1024]   per slot: position + 1 of the record it has reserved (0: none)
//!   tokens[2047]  generation + pid of each liveness token (see `liveness`)
//!   scratch[1024] per slot: the scratch state cell its process commits
//!                 through                                    (one cache line each)
//! offset 256 KiB  data area: the ring (see `ring`), up to `max_capacity` bytes
//! ```
//!
//! # Commit protocol
//!
//! Every field that must change together (ring head/tail/count, unfinished
//! tasks, the journal) lives in [`State`], seven words. The lock holder
//! edits a private copy and publishes it in two steps (see
//! [`Header::commit`]): into its own scratch cell, then one store of
//! [`Header::current`] names that cell; then into the committed cell, and
//! one store of `current` names it again. A process killed at any instant
//! leaves `current` naming a whole state, the old one or the new one, never
//! a mix: the lock's next holder (which takes the lock over from the dead
//! one) finds a consistent queue, and copies a state it finds in a scratch
//! cell back to the committed cell. The committed cell shares the lock's
//! cache line and a scratch cell is a line only its process writes, so in
//! the steady state a small item's `put` or `get` moves two lines between
//! the producer's and the consumer's cores — the lock line and the
//! record's — where the double-buffered state it replaced moved four
//! (lock, `current`, two state cells). Item bytes are
//! written before the commit that makes them reachable, so a killed `put` is
//! invisible and a killed `get` leaves the item in place.
//!
//! The one thing outside `State` that must follow a commit is the per-slot
//! count of tasks a process has taken. The commit records the slot's *new*
//! count in the journal (`slot`, `op`, `arg`, `gen`: the entry's number,
//! one more than the entry before it); applying it stores that
//! count and then the entry's 64-bit generation in the slot. Recovery
//! replays an entry whose generation the slot has not recorded. Storing an
//! absolute count makes a replay idempotent, so a process killed between the
//! two stores is harmless: exactly once, without a second lock.
//!
//! # Loans: large items are copied outside the lock
//!
//! A large item's record is *reserved* under the lock: its header says
//! `RESV` and names the producer's slot, the slot's entry in [`Header::loans`]
//! holds the record's position, and the commit counts the record (in
//! `count` and `unfinished`) like any item. The producer copies the payload
//! without the lock, then takes the lock again to *publish*: one store turns
//! the header into an item header, then the loan entry is cleared. A
//! reserved record at the front makes readers wait.
//!
//! A reservation is *live* while its slot's loan entry still names it and
//! the slot's owner lives; anything else is an orphan, which readers remove
//! without delivering it (uncounting it). So a producer killed before its
//! reservation committed leaves nothing; killed during the copy or before
//! its publish, an orphan (its `put` never returned: nothing acknowledged is
//! lost, nothing torn is delivered); killed after the header store, a
//! published item whose stale loan entry no longer matches a reservation.
//! Growth never moves a live reservation (it waits for the copy), and an
//! empty ring, the only one that shrinks, has none.
//!
//! A consumer copies a large item out the same way (see `take`): under the
//! lock, the item's header says `TAKE` and names its slot, and the slot's
//! loan entry holds the record's position; nothing is committed. It reads
//! without the lock, then pops the record in one commit (one behind the
//! head becomes a `DONE` record, through the journal: `OP_FINISH`). A take
//! is live by the same rule as a reservation; a take that is not live is
//! an item again, delivered to the next reader. Growth does not move a
//! live take either.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ring::Ring;
use super::sync::{EventCount, RobustLock};

/// "PROCQ", a NUL, "Q", then the byte 1.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PROCQ\0Q\x01");
/// Bumped whenever the layout changes incompatibly.
pub(crate) const LAYOUT_VERSION: u32 = 8;
/// Attached processes one queue can track at once.
pub(crate) const MAX_SLOTS: usize = 1024;
/// Liveness tokens one queue can hand out at once (attachments, inspectors
/// included); see `liveness`.
pub(crate) const MAX_TOKENS: usize = 2047;
/// Where the data area starts (a multiple of every page size in use).
pub(crate) const DATA_OFFSET: u64 = 256 * 1024;
const _: () = assert!(std::mem::size_of::<Header>() as u64 <= DATA_OFFSET);
// The lock word, `current` and the committed state share one cache line,
// and nothing else does.
const _: () = {
    let lock = std::mem::offset_of!(Header, lock);
    assert!(lock % 64 == 0);
    assert!(std::mem::offset_of!(Header, current) == lock + 4);
    assert!(std::mem::offset_of!(Header, committed) == lock + 8);
    assert!(std::mem::size_of::<StateCell>() == 56);
    assert!(std::mem::offset_of!(Header, spare) == lock + 64);
    assert!(std::mem::size_of::<ScratchCell>() == 64);
};

/// Items at least this large are copied into and out of the queue outside the lock (see "Loans" in
/// `layout`): below it, the second lock hold costs more than the copy it
/// takes out of the critical section.
pub(crate) const LOAN_BYTES: u64 = 16 << 10;

/// Header flag: the queue outlives its processes (see `Builder::persistent`).
pub(crate) const FLAG_PERSISTENT: u32 = 1;

/// Journal operations (see the module docs); 0 means none.
/// The slot's count of taken tasks becomes the entry's argument (a `get` on
/// a joinable queue, or a `task_done` credited to the slot).
pub(crate) const OP_SET: u64 = 1;
/// A dead or departed slot's tasks were written off; the slot is cleared.
pub(crate) const OP_RECLAIM: u64 = 2;
/// A record this slot took behind the head was read and counted out: mark
/// it freed (the slot's loan entry names it), clear the loan entry, and
/// set the slot's count of taken tasks to the argument (see `take`).
pub(crate) const OP_FINISH: u64 = 3;

/// The committed state of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Ring bookkeeping.
    pub(crate) ring: Ring,
    /// Items put and not yet marked done (joinable queues; equals the
    /// number of items in flight for plain queues' statistics).
    pub(crate) unfinished: u64,
    /// Journal: slot index + 1 (0 = none).
    pub(crate) journal_slot: u64,
    /// Journal: one of the `OP_*` constants.
    pub(crate) journal_op: u64,
    /// Journal: generation of the entry (one more than the entry before
    /// it, never 0 once an entry was written).
    pub(crate) journal_gen: u64,
    /// Journal: the slot's new count of taken tasks (`OP_SET`).
    pub(crate) journal_arg: u64,
    /// When the ring last became empty (`CLOCK_MONOTONIC`, ns; 0 = not
    /// empty since). The ring shrinks only after staying empty a while, so a
    /// queue that drains and refills constantly keeps its memory.
    pub(crate) empty_since: u64,
    /// The queue was shut down (`Queue::shutdown`): puts fail, gets drain
    /// what is left. Never cleared. Part of the state so that an immediate
    /// shutdown drops the items and sets the flag in one commit.
    pub(crate) shutdown: bool,
    /// The shutdown was immediate: gets drop what is left instead of
    /// handing it out (see `Locked::drop_front`). Never cleared.
    pub(crate) shutdown_immediate: bool,
}

/// Bit of the packed word (see [`StateCell`]) that holds `State::shutdown`,
/// the top bit of the journal-operation byte (operations are 0–2).
const SHUTDOWN_BIT: u64 = 1 << 15;
/// Bit of the packed word that holds `State::shutdown_immediate`.
const IMMEDIATE_BIT: u64 = 1 << 14;

/// Storage for one [`State`]: seven plain atomic words, so that a hostile
/// or crashing writer can never cause a data race in the Rust sense. Seven,
/// so that the committed cell fits in the lock's cache line beside the lock
/// word and `current` (see [`Header::committed`]).
#[repr(C)]
pub(crate) struct StateCell {
    /// `head`, `tail`, `count`, `unfinished`, `empty_since`, the packed word
    /// (capacity as log2 in bits 0–7, journal op in 8–13, the immediate
    /// and shutdown flags in bits 14 and 15, journal slot in 16–31, journal argument in 32–63),
    /// `journal_gen`.
    words: [AtomicU64; STATE_WORDS],
}

/// Words of a [`StateCell`].
pub(crate) const STATE_WORDS: usize = 7;
/// Where each field is among a [`StateCell`]'s words.
pub(crate) const W_HEAD: usize = 0;
pub(crate) const W_TAIL: usize = 1;
pub(crate) const W_COUNT: usize = 2;
pub(crate) const W_UNFINISHED: usize = 3;
pub(crate) const W_EMPTY_SINCE: usize = 4;
pub(crate) const W_PACKED: usize = 5;
pub(crate) const W_GEN: usize = 6;

/// The ring capacity a packed word holds (as log2); an out-of-range log2
/// decodes as 0, which `Ring::validate` rejects.
#[inline]
pub(crate) fn packed_cap(packed: u64) -> u64 {
    let log2 = packed & 0xff;
    if log2 < 63 {
        1 << log2
    } else {
        0
    }
}

/// The journal's slot (index + 1) and operation in a packed word.
#[inline]
pub(crate) fn packed_journal(packed: u64) -> (u64, u64) {
    ((packed >> 16) & 0xffff, (packed >> 8) & 0x3f)
}

/// `packed` with the journal entry `op` for slot index + 1 `slot` with
/// argument `arg` in place of its own (as [`StateCell::store`] packs a
/// [`State`]'s journal fields; the fast path's joinable get, see `fast`).
#[inline]
pub(crate) fn packed_with_journal(packed: u64, slot: u64, op: u64, arg: u64) -> u64 {
    (packed & (SHUTDOWN_BIT | IMMEDIATE_BIT | 0xff))
        | (op & 0x3f) << 8
        | (slot & 0xffff) << 16
        | (arg & 0xffff_ffff) << 32
}

/// Whether a packed word says shut down (see [`State::shutdown`]), and
/// immediately (see [`State::shutdown_immediate`]).
#[inline]
pub(crate) fn packed_shutdown(packed: u64) -> (bool, bool) {
    (packed & SHUTDOWN_BIT != 0, packed & IMMEDIATE_BIT != 0)
}

/// A [`StateCell`] on a cache line of its own: a scratch cell (see
/// [`Header::committed`]).
#[repr(C, align(64))]
pub(crate) struct ScratchCell {
    /// The cell.
    pub(crate) cell: StateCell,
}

impl StateCell {
    pub(crate) fn load(&self) -> State {
        let w = self.load_words();
        let packed = w[W_PACKED];
        let (journal_slot, journal_op) = packed_journal(packed);
        let (shutdown, shutdown_immediate) = packed_shutdown(packed);
        State {
            ring: Ring {
                head: w[W_HEAD],
                tail: w[W_TAIL],
                cap: packed_cap(packed),
                count: w[W_COUNT],
            },
            unfinished: w[W_UNFINISHED],
            empty_since: w[W_EMPTY_SINCE],
            journal_op,
            shutdown,
            shutdown_immediate,
            journal_slot,
            journal_arg: packed >> 32,
            journal_gen: w[W_GEN],
        }
    }

    /// The cell's words as they are (the small-item fast path works on
    /// them without unpacking a [`State`]; see `fast`).
    #[inline]
    pub(crate) fn load_words(&self) -> [u64; STATE_WORDS] {
        std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, s: &State) {
        self.store_words(Self::words_of(s));
    }

    #[inline]
    fn store_words(&self, words: [u64; STATE_WORDS]) {
        for (w, v) in self.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Stores the first `n` words of `s` only (a writer killed in the
    /// middle: see [`Header::commit_first`]).
    #[cfg(any(test, feature = "testing"))]
    fn store_first(&self, words: &[u64; STATE_WORDS], n: usize) {
        for (w, &v) in self.words.iter().zip(words).take(n) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// The words that hold `s`, in the order they are stored.
    #[inline]
    fn words_of(s: &State) -> [u64; STATE_WORDS] {
        let packed = u64::from(s.ring.cap.trailing_zeros())
            | (s.journal_op & 0x3f) << 8
            | if s.shutdown_immediate {
                IMMEDIATE_BIT
            } else {
                0
            }
            | if s.shutdown { SHUTDOWN_BIT } else { 0 }
            | (s.journal_slot & 0xffff) << 16
            | (s.journal_arg & 0xffff_ffff) << 32;
        [
            s.ring.head,
            s.ring.tail,
            s.ring.count,
            s.unfinished,
            s.empty_since,
            packed,
            s.journal_gen,
        ]
    }
}

/// One attached process. A cache line each, so processes never share one.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// The owner's liveness token: index + 1, 0 when the slot is free.
    /// Written last when claiming.
    pub(crate) owner: AtomicU32,
    /// The owner token's generation (see `liveness`).
    pub(crate) owner_gen: AtomicU32,
    /// Process id of the owner in its own PID namespace: for messages only.
    pub(crate) pid: AtomicU32,
    /// Reserved.
    _reserved: AtomicU32,
    /// Tasks taken and not yet done.
    pub(crate) tasks: AtomicU64,
    /// Generation of the last journal entry applied to this slot.
    pub(crate) applied: AtomicU64,
    /// Traffic of this process; see [`Traffic`].
    pub(crate) traffic: Traffic,
}
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    /// Applies an [`OP_SET`] journal entry of generation `gen` and argument
    /// `tasks` to this slot, unless it was applied already: the count, then
    /// the generation (so a replay after a crash between the two stores the
    /// same values again; see `Locked::apply_journal`).
    #[inline]
    pub(crate) fn apply_set(&self, gen: u64, tasks: u64) {
        if self.applied.load(Ordering::Relaxed) != gen {
            self.tasks.store(tasks, Ordering::Relaxed);
            self.applied.store(gen, Ordering::Relaxed);
        }
    }
}

/// One liveness token's record (see `liveness`).
#[repr(C)]
#[derive(Default)]
pub(crate) struct TokenCell {
    /// Bumped by each process that claims the token.
    pub(crate) gen: AtomicU32,
    /// Pid of its current holder, in the holder's PID namespace: for
    /// messages only.
    pub(crate) pid: AtomicU32,
}

/// Items and bytes moved, for statistics. Kept per process (in its slot) so
/// that counting costs no cache-line transfer between processes; added to
/// the header's retired totals when the slot is freed. Approximate after a
/// crash (a process killed between its commit and its count is not counted).
#[repr(C)]
#[derive(Default)]
pub(crate) struct Traffic {
    /// Items put.
    pub(crate) put_items: AtomicU64,
    /// Payload bytes put.
    pub(crate) put_bytes: AtomicU64,
    /// Items got.
    pub(crate) got_items: AtomicU64,
    /// Payload bytes got.
    pub(crate) got_bytes: AtomicU64,
}

impl Traffic {
    /// Adds `items` puts (or gets) of `bytes` payload bytes in all. The
    /// caller holds the queue lock, as every writer of a `Traffic` does
    /// (this, and `retire_into` when a slot is claimed or reclaimed), so a
    /// plain load and store add exactly: no atomic read-modify-write (two
    /// of them were 12% of a small item's `put`).
    #[inline]
    pub(crate) fn count(&self, put: bool, items: u64, bytes: u64) {
        let (i, b) = if put {
            (&self.put_items, &self.put_bytes)
        } else {
            (&self.got_items, &self.got_bytes)
        };
        let add = |a: &AtomicU64, n: u64| {
            a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        };
        add(i, items);
        add(b, bytes);
    }

    /// Moves this traffic into `into` and zeroes it.
    pub(crate) fn retire_into(&self, into: &Traffic) {
        for (from, to) in [
            (&self.put_items, &into.put_items),
            (&self.put_bytes, &into.put_bytes),
            (&self.got_items, &into.got_items),
            (&self.got_bytes, &into.got_bytes),
        ] {
            to.fetch_add(from.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// `(put_items, put_bytes, got_items, got_bytes)`.
    pub(crate) fn get(&self) -> [u64; 4] {
        [
            &self.put_items,
            &self.put_bytes,
            &self.got_items,
            &self.got_bytes,
        ]
        .map(|a| a.load(Ordering::Relaxed))
    }
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
    /// Reservations of processes that died (or gave up) before publishing
    /// them, removed by readers (see "Loans").
    pub(crate) orphans: AtomicU64,
    /// Traffic of processes that have left, and of slotless handles.
    pub(crate) retired: Traffic,
}

/// A zero-sized marker: a `[CacheLine; 0]` field starts a cache line.
#[repr(C, align(64))]
struct CacheLine;

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
    /// [`Kind`](crate::Kind) as a number.
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
    /// Starts the lock's cache line.
    _lock_line: [CacheLine; 0],
    /// The lock protecting `current`, `states`, `slots` and the ring. It
    /// shares its cache line with `current` alone, which only the lock's
    /// holder writes: taking the lock brings the line to the holder's core,
    /// so reading and committing `current` costs no transfer of its own
    /// (one of the five lines a small item's `put` or `get` moved).
    pub(crate) lock: RobustLock,
    /// Which cell holds the committed state: [`CURRENT_COMMITTED`] (0) for
    /// `committed`, [`CURRENT_SPARE`] for `spare`, `CURRENT_SCRATCH + i`
    /// for `scratch[i]`. Only nonzero in the middle of a commit, or after
    /// its writer died there.
    pub(crate) current: AtomicU32,
    /// The committed state, in the lock's cache line (see [`Header::commit`]).
    pub(crate) committed: StateCell,
    /// The scratch cell of holders without a slot (persistent creators,
    /// inspections).
    pub(crate) spare: ScratchCell,
    /// Bumped when items arrive; consumers wait here.
    pub(crate) items: EventCount,
    /// Bumped when room appears; producers wait here.
    pub(crate) space: EventCount,
    /// Bumped when the unfinished-task count reaches zero; `join` waits here.
    pub(crate) done: EventCount,
    /// Statistics.
    pub(crate) counters: Counters,
    /// Bytes at the start of the data area whose pages stay reserved
    /// beyond the ring's own (`cap`): a power of two, or anything else for
    /// "only the ring's own". An empty ring that shrinks while the queue is
    /// busy keeps its pages, and regrowing into them needs no `fallocate`
    /// and no fresh page (see "Keeping pages" in `capacity`). Written only
    /// under the lock, and never claims more than is reserved: raised after
    /// the `fallocate`, lowered before the punch.
    pub(crate) kept: AtomicU64,
    /// Attached processes.
    pub(crate) slots: [Slot; MAX_SLOTS],
    /// Per slot, the position + 1 of the record its process has reserved
    /// and is copying into (0: none); see the module docs.
    pub(crate) loans: [AtomicU64; MAX_SLOTS],
    /// Liveness tokens (written without the lock, each by its claimer).
    pub(crate) tokens: [TokenCell; MAX_TOKENS],
    /// Per slot, the scratch cell its process commits through (see
    /// [`Header::commit`]): a line only that process writes.
    pub(crate) scratch: [ScratchCell; MAX_SLOTS],
}

/// Stores a full [`Header::commit`] makes with a scratch cell: each of its
/// two steps writes a cell's words and then `current`.
#[cfg(any(test, feature = "testing"))]
pub(crate) const COMMIT_STORES: usize = 2 * (STATE_WORDS + 1);

/// Tests: if nonzero, the next commit of this process makes only this many
/// stores and then the process SIGKILLs itself (see `__fuzzing`).
#[cfg(any(test, feature = "testing"))]
pub(crate) static COMMIT_KILL_AFTER: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// `current`: the committed state is in `committed`.
pub(crate) const CURRENT_COMMITTED: u32 = 0;
/// `current`: the committed state is in `spare`.
pub(crate) const CURRENT_SPARE: u32 = 1;
/// `current`: the committed state is in `scratch[current - CURRENT_SCRATCH]`.
pub(crate) const CURRENT_SCRATCH: u32 = 2;

impl Header {
    /// The cell `current` names, if it names one.
    fn cell(&self, current: u32) -> Option<&StateCell> {
        match current {
            CURRENT_COMMITTED => Some(&self.committed),
            CURRENT_SPARE => Some(&self.spare.cell),
            i => self
                .scratch
                .get((i - CURRENT_SCRATCH) as usize)
                .map(|c| &c.cell),
        }
    }

    /// The cell holding the committed state.
    fn live(&self) -> Option<&StateCell> {
        self.cell(self.current.load(Ordering::Acquire))
    }

    /// Item count of the committed state, read without the lock: a hint for
    /// spinning waiters, never used to decide anything.
    pub(crate) fn peek_count(&self) -> u64 {
        self.live()
            .map_or(0, |c| c.words[2].load(Ordering::Relaxed))
    }

    /// Whether the committed state is shut down, read without the lock: a
    /// hint for spinning waiters, never used to decide anything.
    pub(crate) fn peek_shutdown(&self) -> bool {
        self.live()
            .is_some_and(|c| c.words[5].load(Ordering::Relaxed) & SHUTDOWN_BIT != 0)
    }

    /// The committed state (caller holds the lock); `None` if `current`
    /// names no cell (hostile memory).
    pub(crate) fn state(&self) -> Option<State> {
        self.live().map(StateCell::load)
    }

    /// Whether the committed state sits in a scratch cell: its writer died
    /// between the two steps of [`commit`](Self::commit).
    pub(crate) fn in_scratch(&self) -> bool {
        self.current.load(Ordering::Relaxed) != CURRENT_COMMITTED
    }

    /// Publishes `s` as the committed state (caller holds the lock), in two
    /// steps, each ending in one store of `current`: into the caller's
    /// scratch cell (`scratch`: `CURRENT_SPARE` or `CURRENT_SCRATCH + slot`),
    /// which then holds the committed state; then into `committed`, which
    /// holds it again. A process killed at any instant leaves `current`
    /// naming a whole state, old or new. `committed` shares the lock's
    /// cache line, which the holder owns already, and a scratch cell is a
    /// line that only its process writes, so a commit moves no cache line
    /// between processes; the next holder reads the state from the line it
    /// took the lock in.
    #[inline]
    pub(crate) fn commit(&self, s: &State, scratch: u32) {
        self.commit_words(&StateCell::words_of(s), scratch);
    }

    /// [`commit`](Self::commit) of a state as its cell's words (see
    /// [`StateCell::load_words`]).
    #[inline(always)]
    pub(crate) fn commit_words(&self, words: &[u64; STATE_WORDS], scratch: u32) {
        #[cfg(any(test, feature = "testing"))]
        {
            let n = COMMIT_KILL_AFTER.load(Ordering::Relaxed);
            if n != 0 {
                // After all of its stores, too: a kill between the commit
                // and the journal's application that follows it.
                if !self.commit_words_first(words, scratch, n) || n == COMMIT_STORES {
                    let _ = rustix::process::kill_process(
                        rustix::process::getpid(),
                        rustix::process::Signal::KILL,
                    );
                    std::process::abort(); // not reached: SIGKILL is immediate
                }
                return;
            }
        }
        // `commit_first` with no limit, without its store counting (it was
        // a tenth of a small item's put + get): the same stores in the
        // same order.
        if let Some(cell) = self.cell(scratch).filter(|_| scratch != CURRENT_COMMITTED) {
            cell.store_words(*words);
            self.current.store(scratch, Ordering::Release);
        }
        self.committed.store_words(*words);
        self.current.store(CURRENT_COMMITTED, Ordering::Release);
    }

    /// [`commit`](Self::commit)'s first `n` stores (of `COMMIT_STORES`, or
    /// `STATE_WORDS + 1` without a scratch cell), as a writer killed after
    /// them leaves it; whether it did them all.
    #[cfg(test)]
    pub(crate) fn commit_first(&self, s: &State, scratch: u32, n: usize) -> bool {
        self.commit_words_first(&StateCell::words_of(s), scratch, n)
    }

    #[cfg(any(test, feature = "testing"))]
    fn commit_words_first(&self, words: &[u64; STATE_WORDS], scratch: u32, n: usize) -> bool {
        let mut left = n;
        if let Some(cell) = self.cell(scratch).filter(|_| scratch != CURRENT_COMMITTED) {
            if !self.publish_first(cell, words, scratch, &mut left) {
                return false;
            }
        }
        self.publish_first(&self.committed, words, CURRENT_COMMITTED, &mut left)
    }

    /// One step of a commit: `words` into `cell`, then `current = to`, but
    /// no more than `left` stores in all; whether it made them all.
    #[cfg(any(test, feature = "testing"))]
    fn publish_first(
        &self,
        cell: &StateCell,
        words: &[u64; STATE_WORDS],
        to: u32,
        left: &mut usize,
    ) -> bool {
        let k = (*left).min(STATE_WORDS + 1);
        *left -= k;
        cell.store_first(words, k.min(STATE_WORDS));
        if k > STATE_WORDS {
            self.current.store(to, Ordering::Release);
        }
        k == STATE_WORDS + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_entry_packs_as_a_states_does() {
        let mut s = State {
            ring: Ring::new(1 << 20),
            journal_slot: 7,
            journal_op: OP_RECLAIM,
            journal_arg: 123,
            shutdown: true,
            ..State::default()
        };
        for immediate in [false, true] {
            s.shutdown_immediate = immediate;
            let before = StateCell::words_of(&s)[W_PACKED];
            let (slot, op, arg) = (MAX_SLOTS as u64, OP_SET, u64::from(u32::MAX));
            let after = State {
                journal_slot: slot,
                journal_op: op,
                journal_arg: arg,
                ..s
            };
            assert_eq!(
                packed_with_journal(before, slot, op, arg),
                StateCell::words_of(&after)[W_PACKED]
            );
        }
    }
}
