//! One process's attachment to a queue segment, and the locked operations
//! on it.
//!
//! [`Shared`] maps the segment, validates its header, claims a slot in the
//! attachment table and releases it on drop (unlinking the name when the
//! last process leaves). [`Locked`] is the lock guard: taking it repairs the
//! queue if the previous holder died, and every mutation goes through its
//! [`Locked::commit`] (see `layout` for the commit protocol).
//!
//! Handles of one queue inside one process share a single `Shared` through
//! a per-process registry, so a process occupies one slot however many
//! handles it holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::layout::*;
use crate::liveness::ProcessId;
use crate::ring::{record_size, Memory, Ring, RECORD_HEADER};
use crate::shm::{DataArea, Segment};
use crate::sync::{self, Acquired, LockError, Wake};

/// Largest data area any queue may have (1 TiB of address space).
pub(crate) const MAX_CAPACITY_LIMIT: u64 = 1 << 40;
/// Smallest ring.
pub(crate) const MIN_CAPACITY_LIMIT: u64 = 4096;
/// How long a ring must stay empty before it shrinks back (hysteresis: a
/// queue that drains and refills constantly must not free and re-reserve
/// its memory every time).
const SHRINK_AFTER: Duration = Duration::from_millis(20);
/// Bounds of the adaptive spin before a waiter sleeps (iterations).
const SPIN_MIN: u32 = 16;
const SPIN_MAX: u32 = 2048;
/// How often `join` re-checks for dead consumers while it waits.
const JOIN_SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Most payload bytes one lock hold of a batch call moves (and one
/// `get_many` returns), give or take one item: a batch of small items still
/// goes under one hold, a batch of large ones in chunks, so that the other
/// side never waits behind a multi-megabyte copy. Batching only pays for
/// small items anyway: past 64 KiB the copy costs far more than the call, and
/// handing many large buffers over at once makes the receiver's allocator
/// return and re-fault its memory (measured: 100 KB items through Python's
/// get_many went from 93 µs to ~15 µs per item).
pub(crate) const BATCH_BYTES: u64 = 64 << 10;

/// How long a call may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Block {
    /// Fail at once with `Empty`/`Full`.
    No,
    /// Wait as long as it takes.
    Forever,
    /// Wait until this instant.
    Until(Instant),
}

impl Block {
    pub(crate) fn timeout(d: Duration) -> Block {
        Instant::now()
            .checked_add(d)
            .map_or(Block::Forever, Block::Until)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Block::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Creation parameters (see `Builder`).
#[derive(Debug, Clone)]
pub(crate) struct CreateOptions {
    pub(crate) kind: Kind,
    pub(crate) fingerprint: u64,
    pub(crate) maxsize: u64,
    pub(crate) min_capacity: u64,
    pub(crate) max_capacity: u64,
    pub(crate) persistent: bool,
}

/// What an opener expects to find.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// Required kind, or `None` for any.
    pub(crate) kind: Option<Kind>,
    /// Required fingerprint, 0 for any.
    pub(crate) fingerprint: u64,
}

/// Per-process registry of attachments, keyed by queue name.
static REGISTRY: Mutex<Option<HashMap<String, Weak<Shared>>>> = Mutex::new(None);

/// This process's attachment to one queue.
pub(crate) struct Shared {
    /// Queue name (without the `/dev/shm` prefix).
    name: String,
    /// The mapping.
    seg: Segment,
    /// This process, as recorded in its slot.
    me: ProcessId,
    /// Index of this process's slot.
    slot: usize,
    /// Kind, read once from the validated header.
    kind: Kind,
    /// Item bound (0 = none), read once from the validated header.
    maxsize: u64,
    /// Data-area size, read once from the validated header.
    max_capacity: u64,
    /// Ring capacity floor, read once from the validated header.
    min_capacity: u64,
    /// Whether spinning before sleeping can help on this machine.
    spin: bool,
    /// Current spin length (iterations): doubles when a spin sees the queue
    /// change in time, halves when it does not, so that spinning stops
    /// costing CPU where processes outnumber cores.
    spin_budget: AtomicU32,
}

// SAFETY: all shared-memory access goes through atomics, the process-shared
// pthread mutex or byte copies made while holding it; the raw pointers in
// `Segment` stay valid for the life of `Shared`.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Whether the process creating a segment may still be initializing it:
/// unknown (pid not written yet) or alive.
fn creator_may_be_alive(h: &Header) -> bool {
    match h.creator_pid.load(Ordering::Relaxed) {
        0 => true,
        pid => ProcessId::pid_exists(pid),
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least DATA_OFFSET ≥ size_of::<Header>()
        // bytes (checked at create/open), page aligned, and every field of
        // `Header` is valid for any bit pattern (atomics and byte arrays).
        unsafe { &*(self.seg.base() as *const Header) }
    }

    fn data(&self) -> Result<DataArea<'_>> {
        self.seg
            .area(DATA_OFFSET, self.max_capacity)
            .ok_or_else(|| Error::invalid(&self.name, "data area outside mapping"))
    }

    /// Creates a new queue segment and attaches to it.
    pub(crate) fn create(name: &str, opts: &CreateOptions) -> Result<Arc<Shared>> {
        let max_capacity = opts.max_capacity;
        let min_capacity = opts.min_capacity.min(max_capacity);
        debug_assert!(max_capacity.is_power_of_two() && min_capacity.is_power_of_two());
        let seg = Segment::create(name, DATA_OFFSET + max_capacity, DATA_OFFSET + min_capacity)?;
        let me = ProcessId::current();
        // SAFETY: see `header()`; the segment is brand new and zero-filled.
        let h = unsafe { &*(seg.base() as *const Header) };
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.header_size
            .store(std::mem::size_of::<Header>() as u32, Ordering::Relaxed);
        h.fingerprint.store(opts.fingerprint, Ordering::Relaxed);
        h.kind.store(opts.kind as u32, Ordering::Relaxed);
        h.flags.store(
            if opts.persistent { FLAG_PERSISTENT } else { 0 },
            Ordering::Relaxed,
        );
        h.maxsize.store(opts.maxsize, Ordering::Relaxed);
        h.min_capacity.store(min_capacity, Ordering::Relaxed);
        h.max_capacity.store(max_capacity, Ordering::Relaxed);
        h.data_offset.store(DATA_OFFSET, Ordering::Relaxed);
        h.creator_pid.store(me.pid, Ordering::Relaxed);
        h.created_unix_ms.store(now_unix_ms(), Ordering::Relaxed);
        // SAFETY: nobody can use the lock before `magic` is published below.
        if let Err(e) = unsafe { sync::RobustMutex::init(&h.lock) } {
            let _ = Segment::unlink(name);
            return Err(Error::io("pthread_mutex_init", e));
        }
        h.states[0].store(&State {
            ring: Ring::new(min_capacity),
            ..State::default()
        });
        h.current.store(0, Ordering::Relaxed);
        // A persistent queue is owned by nobody: it has no slot to release.
        let slot = if opts.persistent { usize::MAX } else { 0 };
        if !opts.persistent {
            h.slots[0]
                .start_time
                .store(me.start_time, Ordering::Relaxed);
            h.slots[0].pid.store(me.pid, Ordering::Relaxed);
        }
        h.magic.store(MAGIC, Ordering::Release);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            seg,
            me,
            slot,
            kind: opts.kind,
            maxsize: opts.maxsize,
            max_capacity,
            min_capacity,
            spin: sync::may_spin(),
            spin_budget: AtomicU32::new(SPIN_MAX / 4),
        });
        if !opts.persistent {
            register(&shared);
        }
        Ok(shared)
    }

    /// Attaches to an existing queue, reusing this process's attachment.
    pub(crate) fn open(name: &str, expect: Expect) -> Result<Arc<Shared>> {
        crate::shm::validate_name(name)?;
        let pid = std::process::id();
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let map = reg.get_or_insert_with(HashMap::new);
        if let Some(existing) = map.get(name).and_then(Weak::upgrade) {
            if existing.me.pid == pid && existing.header().unlinked.load(Ordering::Relaxed) == 0 {
                existing.check_expect(expect)?;
                return Ok(existing);
            }
        }
        let shared = Arc::new(Shared::attach(name, expect, true)?);
        map.insert(name.to_owned(), Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Maps a queue for inspection only: no slot is claimed, so the reader
    /// neither counts as a user nor keeps the queue alive.
    pub(crate) fn inspect(name: &str) -> Result<Shared> {
        Shared::attach(
            name,
            Expect {
                kind: None,
                fingerprint: 0,
            },
            false,
        )
    }

    fn attach(name: &str, expect: Expect, claim: bool) -> Result<Shared> {
        let seg = Segment::open(name, DATA_OFFSET + MAX_CAPACITY_LIMIT)?;
        if (seg.len() as u64) < DATA_OFFSET {
            return Err(Error::invalid(name, "too small to be a procq queue"));
        }
        // SAFETY: the mapping covers the header (checked just above).
        let h = unsafe { &*(seg.base() as *const Header) };
        // The creator publishes `magic` last; give a racing creator a moment.
        let started = Instant::now();
        loop {
            match h.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 if started.elapsed() < Duration::from_secs(2) && creator_may_be_alive(h) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                0 => {
                    return Err(Error::invalid(
                        name,
                        "never initialized (its creator died while creating it?)",
                    ))
                }
                _ => return Err(Error::invalid(name, "not a procq queue (bad magic number)")),
            }
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(Error::invalid(
                name,
                format!(
                    "layout version {version}; this procq {} reads version {LAYOUT_VERSION}",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        if h.header_size.load(Ordering::Relaxed) as usize != std::mem::size_of::<Header>() {
            return Err(Error::invalid(
                name,
                "header size differs (built for another platform?)",
            ));
        }
        let kind = Kind::from_raw(h.kind.load(Ordering::Relaxed))
            .ok_or_else(|| Error::invalid(name, "unknown queue kind"))?;
        let max_capacity = h.max_capacity.load(Ordering::Relaxed);
        let min_capacity = h.min_capacity.load(Ordering::Relaxed);
        if !max_capacity.is_power_of_two()
            || !min_capacity.is_power_of_two()
            || min_capacity > max_capacity
            || min_capacity < crate::ring::ALIGN
            || h.data_offset.load(Ordering::Relaxed) != DATA_OFFSET
            || DATA_OFFSET + max_capacity > seg.len() as u64
        {
            return Err(Error::invalid(name, "header limits are inconsistent"));
        }
        let mut shared = Shared {
            name: name.to_owned(),
            seg,
            me: ProcessId::current(),
            slot: usize::MAX,
            kind,
            maxsize: h.maxsize.load(Ordering::Relaxed),
            max_capacity,
            min_capacity,
            spin: sync::may_spin(),
            spin_budget: AtomicU32::new(SPIN_MAX / 4),
        };
        shared.check_expect(expect)?;
        if !claim {
            return Ok(shared);
        }
        let slot = {
            let mut g = shared.lock()?;
            if shared.header().unlinked.load(Ordering::Relaxed) != 0 {
                return Err(Error::NotFound(name.to_owned()));
            }
            g.claim_slot()?
        };
        shared.slot = slot;
        Ok(shared)
    }

    fn check_expect(&self, expect: Expect) -> Result<()> {
        if let Some(kind) = expect.kind {
            if kind != self.kind {
                return Err(Error::invalid(
                    &self.name,
                    format!("is a {:?}, not a {:?}", self.kind, kind),
                ));
            }
        }
        let stored = self.header().fingerprint.load(Ordering::Relaxed);
        if expect.fingerprint != 0 && stored != 0 && stored != expect.fingerprint {
            return Err(Error::invalid(
                &self.name,
                "was created for a different item type",
            ));
        }
        Ok(())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.maxsize
    }

    /// Largest payload a single item may have.
    pub(crate) fn max_item_bytes(&self) -> u64 {
        self.max_capacity - RECORD_HEADER
    }

    /// Takes the lock, repairing the queue if its last holder died.
    pub(crate) fn lock(&self) -> Result<Locked<'_>> {
        let h = self.header();
        let acquired = h.lock.lock(self.me.pid).map_err(|e| match e {
            LockError::NotRecoverable => Error::invalid(&self.name, "lock is unrecoverable"),
            LockError::DeadHolder(pid) => Error::invalid(
                &self.name,
                format!("lock held by dead process {pid} and not recoverable"),
            ),
            LockError::Os(e) => Error::io("pthread_mutex_lock", e),
        })?;
        let mut g = Locked {
            sh: self,
            state: h.state(),
            wake_items: false,
            wake_space: false,
            wake_done: false,
        };
        if acquired == Acquired::OwnerDied {
            h.counters.recoveries.fetch_add(1, Ordering::Relaxed);
            // The committed state is consistent by construction; what is left
            // is the journal and the slots of processes that died.
            let result = g.validate().map(|()| {
                g.apply_journal();
                g.sweep();
            });
            h.lock.mark_consistent();
            result?;
            // Whatever the dead process was about to announce, announce it.
            g.wake_items = true;
            g.wake_space = true;
            g.wake_done = g.state.unfinished == 0;
        }
        g.validate()?;
        Ok(g)
    }

    /// Puts one encoded item.
    pub(crate) fn push(&self, item: &Encoded<'_>, block: Block, closed: &AtomicBool) -> Result<()> {
        self.check_size(item.len())?;
        let mut waiter = Waiter::new(self, block, Want::Space);
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock()?;
            if g.try_push(item)? {
                waiter.succeeded();
                return Ok(());
            }
            if !waiter.wait(g)? {
                return Err(Error::Full);
            }
        }
    }

    /// Puts several encoded items in order, as many per lock as fit.
    pub(crate) fn push_many(
        &self,
        items: &[Encoded<'_>],
        block: Block,
        closed: &AtomicBool,
    ) -> Result<usize> {
        for item in items {
            self.check_size(item.len())?;
        }
        let mut done = 0;
        let mut waiter = Waiter::new(self, block, Want::Space);
        while done < items.len() {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock()?;
            let mut held = 0u64;
            while done < items.len() && held < BATCH_BYTES && g.try_push(&items[done])? {
                held += items[done].len();
                done += 1;
            }
            if done == items.len() {
                break;
            }
            if held >= BATCH_BYTES {
                // A batch of large items: let consumers in between chunks
                // instead of holding the lock for the whole copy.
                drop(g);
                continue;
            }
            if !waiter.wait(g)? {
                return Ok(done);
            }
        }
        Ok(done)
    }

    fn check_size(&self, len: u64) -> Result<()> {
        match record_size(len) {
            Some(rec) if rec <= self.max_capacity => Ok(()),
            _ => Err(Error::TooLarge {
                size: len,
                limit: self.max_item_bytes(),
            }),
        }
    }

    /// Removes up to `max` items, waiting (per `block`) for the first one;
    /// `f` sees each item's bytes while the lock is held (see `pop_into`).
    pub(crate) fn pop<F: FnMut(&[u8]) -> bool>(
        &self,
        max: usize,
        block: Block,
        closed: &AtomicBool,
        mut f: F,
    ) -> Result<usize> {
        let mut waiter = Waiter::new(self, block, Want::Items);
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock()?;
            let n = g.pop_into(max, &mut f)?;
            if n > 0 {
                waiter.succeeded();
                return Ok(n);
            }
            if !waiter.wait(g)? {
                return Err(Error::Empty);
            }
        }
    }

    /// Marks one task done.
    pub(crate) fn task_done(&self) -> Result<()> {
        let mut g = self.lock()?;
        let s = &mut g.state;
        if s.unfinished <= s.ring.count {
            return Err(Error::TaskDoneTooOften);
        }
        s.unfinished -= 1;
        let taken = self
            .slot_ref()
            .map_or(0, |slot| slot.tasks.load(Ordering::Relaxed) as u32);
        if taken > 0 {
            g.journal(self.slot, OP_DONE, 1);
        }
        g.wake_done = g.state.unfinished == 0;
        g.commit();
        Ok(())
    }

    /// Waits until every item put has been marked done.
    pub(crate) fn join(&self, block: Block, closed: &AtomicBool) -> Result<()> {
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock()?;
            if g.state.unfinished == 0 {
                return Ok(());
            }
            // Write off tasks of consumers that died: a dead process cannot
            // announce its own death, so look before every wait.
            g.sweep();
            if g.state.unfinished == 0 {
                return Ok(());
            }
            if matches!(block, Block::Until(d) if Instant::now() >= d) || matches!(block, Block::No)
            {
                return Err(Error::Full);
            }
            let key = self.header().done.prepare();
            drop(g);
            // ...and look again now and then while waiting.
            let tick = Instant::now() + JOIN_SWEEP_EVERY;
            let until = block.deadline().map_or(tick, |d| d.min(tick));
            self.header().done.wait(key, Some(until));
        }
    }

    /// The committed state (takes the lock: exact).
    pub(crate) fn state(&self) -> Result<State> {
        Ok(self.lock()?.state)
    }

    /// Wakes every waiter of this queue (used by `close`).
    pub(crate) fn wake_all(&self) {
        let h = self.header();
        h.items.bump();
        h.space.bump();
        h.done.bump();
    }

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
        h.unlinked.store(1, Ordering::Relaxed);
        Segment::unlink(&self.name)?;
        Ok(true)
    }

    /// Flags the queue as removed so that racing `open`s refuse it.
    pub(crate) fn mark_unlinked(&self) {
        if let Ok(_g) = self.lock() {
            self.header().unlinked.store(1, Ordering::Relaxed);
        }
    }

    /// Where this process counts its traffic: its slot, or the retired
    /// totals for a slotless (persistent-creator or inspecting) attachment.
    fn traffic(&self) -> &Traffic {
        let h = self.header();
        h.slots
            .get(self.slot)
            .map_or(&h.counters.retired, |s| &s.traffic)
    }

    fn slot_ref(&self) -> Option<&Slot> {
        self.header().slots.get(self.slot)
    }

    /// Live statistics, for inspection.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let mut g = self.lock()?;
        g.shrink_if_idle();
        let h = self.header();
        let mut attached = 0;
        let mut dead = 0;
        let mut traffic = h.counters.retired.get();
        for slot in h.slots.iter() {
            for (total, v) in traffic.iter_mut().zip(slot.traffic.get()) {
                *total = total.wrapping_add(v);
            }
            let pid = slot.pid.load(Ordering::Relaxed);
            if pid != 0 {
                let id = ProcessId {
                    pid,
                    start_time: slot.start_time.load(Ordering::Relaxed),
                };
                if id.is_alive() {
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

fn register(shared: &Arc<Shared>) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.get_or_insert_with(HashMap::new)
        .insert(shared.name.clone(), Arc::downgrade(shared));
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A forked child inherits the parent's attachment but not its slot.
        if self.slot == usize::MAX || self.me.pid != std::process::id() {
            return;
        }
        if let Ok(mut reg) = REGISTRY.lock() {
            if let Some(map) = reg.as_mut() {
                if map.get(&self.name).is_some_and(|w| w.strong_count() == 0) {
                    map.remove(&self.name);
                }
            }
        }
        let Ok(mut g) = self.lock() else { return };
        g.shrink_if_idle();
        // Tasks this process took and never finished are written off, as
        // for a process that died: `join` must not wait for them forever.
        g.reclaim(self.slot);
        g.sweep();
        let h = self.header();
        let persistent = h.flags.load(Ordering::Relaxed) & FLAG_PERSISTENT != 0;
        if !persistent && h.slots.iter().all(|s| s.pid.load(Ordering::Relaxed) == 0) {
            h.unlinked.store(1, Ordering::Relaxed);
            let _ = Segment::unlink(&self.name);
        }
    }
}

/// What a blocked caller waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// An item to get.
    Items,
    /// Room to put.
    Space,
}

/// The waiting half of a blocking call: spin first, then announce and sleep.
///
/// A waiter first spins *without* announcing itself, watching the item
/// count, so that a producer on another core does not have to make a
/// `FUTEX_WAKE` syscall for it. Only if the spin fails does it set the
/// event count's waiter bit (under the lock, so no wake-up can be lost) and
/// sleep. The spin length adapts to how often spinning pays off.
struct Waiter<'a> {
    sh: &'a Shared,
    block: Block,
    want: Want,
    /// Spinning is tried once per wake-up.
    spun: bool,
    /// Counted once per call in the statistics.
    blocked: bool,
}

impl<'a> Waiter<'a> {
    fn new(sh: &'a Shared, block: Block, want: Want) -> Waiter<'a> {
        Waiter {
            sh,
            block,
            want,
            spun: false,
            blocked: false,
        }
    }

    /// Whether what we wait for has (probably) happened.
    fn ready(&self) -> bool {
        let count = self.sh.header().peek_count();
        match self.want {
            Want::Items => count > 0,
            Want::Space => self.sh.maxsize == 0 || count < self.sh.maxsize,
        }
    }

    /// Called after the operation succeeded: rewards a spin that led to it.
    fn succeeded(&self) {
        if self.spun && self.sh.spin {
            let b = self.sh.spin_budget.load(Ordering::Relaxed);
            self.sh
                .spin_budget
                .store((b * 2).min(SPIN_MAX), Ordering::Relaxed);
        }
    }

    /// Waits for a change, consuming the lock guard. `Ok(false)` when the
    /// deadline passed (or the call must not block).
    fn wait(&mut self, mut g: Locked<'_>) -> Result<bool> {
        let h = self.sh.header();
        if let Block::No = self.block {
            return Ok(false);
        }
        if !self.blocked {
            self.blocked = true;
            let counter = if self.want == Want::Items {
                &h.counters.blocked_gets
            } else {
                &h.counters.blocked_puts
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if self.sh.spin && !self.spun {
            drop(g);
            self.spun = true;
            let budget = self.sh.spin_budget.load(Ordering::Relaxed);
            for _ in 0..budget {
                if self.ready() {
                    return Ok(true);
                }
                std::hint::spin_loop();
            }
            self.sh
                .spin_budget
                .store((budget / 2).max(SPIN_MIN), Ordering::Relaxed);
            return Ok(true); // go around once more, then announce and sleep
        }
        // An idle ring gives its memory back while its consumers wait.
        let mut until = self.block.deadline();
        if self.want == Want::Items {
            if let Some(again) = g.shrink_if_idle() {
                until = Some(until.map_or(again, |d| d.min(again)));
            }
        }
        let ev = if self.want == Want::Items {
            &h.items
        } else {
            &h.space
        };
        let key = ev.prepare();
        drop(g);
        self.spun = false;
        if ev.wait(key, until) == Wake::TimedOut && until == self.block.deadline() {
            h.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }
}

/// The lock guard. Unlocks on drop, then wakes whoever the change concerns.
pub(crate) struct Locked<'a> {
    sh: &'a Shared,
    /// Working copy of the committed state; published by `commit`.
    pub(crate) state: State,
    wake_items: bool,
    wake_space: bool,
    wake_done: bool,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let h = self.sh.header();
        h.lock.unlock();
        if self.wake_items {
            h.items.notify_all();
        }
        if self.wake_space {
            h.space.notify_all();
        }
        if self.wake_done {
            h.done.notify_all();
        }
    }
}

impl Locked<'_> {
    fn corrupt(&self, what: &str) -> Error {
        Error::invalid(&self.sh.name, format!("corrupted shared memory: {what}"))
    }

    fn validate(&self) -> Result<()> {
        let s = &self.state;
        s.ring
            .validate(self.sh.max_capacity)
            .map_err(|c| self.corrupt(c.0))?;
        if s.ring.cap < self.sh.min_capacity {
            return Err(self.corrupt("capacity below minimum"));
        }
        if self.sh.kind == Kind::Joinable && s.unfinished < s.ring.count {
            return Err(self.corrupt("fewer unfinished tasks than items"));
        }
        if s.journal_slot as usize > MAX_SLOTS || s.journal_op > OP_RECLAIM {
            return Err(self.corrupt("bad journal entry"));
        }
        Ok(())
    }

    /// Publishes the working state.
    fn commit(&mut self) {
        self.state.gen = self.state.gen.wrapping_add(1);
        // A journal entry written since the last commit has no generation
        // yet. Only such an entry needs applying here: an older one was
        // applied by the commit that wrote it (or by recovery), and checking
        // it again would read another process's slot on every put.
        let fresh = self.state.journal_slot != 0 && self.state.journal_gen == 0;
        if fresh {
            self.state.journal_gen = self.state.gen;
        }
        self.sh.header().commit(&self.state);
        if fresh {
            self.apply_journal();
        }
    }

    /// Records a slot adjustment to apply right after the next commit.
    fn journal(&mut self, slot: usize, op: u64, arg: u64) {
        if slot >= MAX_SLOTS {
            return; // persistent creators have no slot
        }
        self.state.journal_slot = slot as u64 + 1;
        self.state.journal_op = op;
        self.state.journal_arg = arg;
        self.state.journal_gen = 0; // filled in by `commit`
    }

    /// Applies the committed journal entry to its slot unless already done.
    fn apply_journal(&self) {
        let s = &self.state;
        let Some(slot) = (s.journal_slot as usize)
            .checked_sub(1)
            .and_then(|i| self.sh.header().slots.get(i))
        else {
            return;
        };
        let word = slot.tasks.load(Ordering::Relaxed);
        let gen32 = s.journal_gen as u32;
        if (word >> 32) as u32 == gen32 {
            return;
        }
        let taken = word as u32;
        let taken = match s.journal_op {
            OP_TAKE => taken.saturating_add(s.journal_arg as u32),
            OP_DONE => taken.saturating_sub(s.journal_arg as u32),
            _ => 0,
        };
        slot.tasks.store(
            (u64::from(gen32) << 32) | u64::from(taken),
            Ordering::Relaxed,
        );
        if s.journal_op == OP_RECLAIM {
            slot.start_time.store(0, Ordering::Relaxed);
            slot.pid.store(0, Ordering::Relaxed);
        }
    }

    /// Claims a free slot for the calling process.
    fn claim_slot(&mut self) -> Result<usize> {
        let me = self.sh.me;
        for attempt in 0..2 {
            let slots = &self.sh.header().slots;
            if let Some(i) = slots
                .iter()
                .position(|s| s.pid.load(Ordering::Relaxed) == 0)
            {
                let slot = &slots[i];
                // A fresh slot has "seen" the current journal entry, so a
                // later recovery never replays an old entry onto it.
                slot.tasks.store(
                    u64::from(self.state.journal_gen as u32) << 32,
                    Ordering::Relaxed,
                );
                slot.traffic.retire_into(&self.sh.header().counters.retired);
                slot.start_time.store(me.start_time, Ordering::Relaxed);
                slot.pid.store(me.pid, Ordering::Relaxed);
                return Ok(i);
            }
            if attempt == 0 {
                self.sweep();
            }
        }
        Err(Error::invalid(
            &self.sh.name,
            format!("more than {MAX_SLOTS} processes attached"),
        ))
    }

    /// Reclaims the slots of processes that are no longer alive.
    pub(crate) fn sweep(&mut self) {
        let h = self.sh.header();
        for i in 0..MAX_SLOTS {
            let slot = &h.slots[i];
            let pid = slot.pid.load(Ordering::Relaxed);
            if pid == 0 || (pid == self.sh.me.pid && i == self.sh.slot) {
                continue;
            }
            let id = ProcessId {
                pid,
                start_time: slot.start_time.load(Ordering::Relaxed),
            };
            if !id.is_alive() {
                self.reclaim(i);
                h.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes off a slot's unfinished tasks and frees it.
    fn reclaim(&mut self, i: usize) {
        let h = self.sh.header();
        let Some(slot) = h.slots.get(i) else {
            return;
        };
        slot.traffic.retire_into(&h.counters.retired);
        let taken = u64::from(slot.tasks.load(Ordering::Relaxed) as u32);
        let s = &mut self.state;
        let before = s.unfinished;
        s.unfinished = s.unfinished.saturating_sub(taken).max(s.ring.count);
        self.wake_done |= before != 0 && s.unfinished == 0;
        self.journal(i, OP_RECLAIM, 0);
        self.commit();
    }

    /// Pushes one item if it fits now; `Ok(false)` if the queue is full.
    fn try_push(&mut self, item: &Encoded<'_>) -> Result<bool> {
        let sh = self.sh;
        if sh.maxsize > 0 && self.state.ring.count >= sh.maxsize {
            return Ok(false);
        }
        let mem = sh.data()?;
        let len = item.len();
        let plan = loop {
            match self.state.ring.plan_push(len) {
                Some(plan) => break plan,
                None if self.state.ring.cap < sh.max_capacity => self.grow(&mem)?,
                None => return Ok(false),
            }
        };
        let off = self
            .state
            .ring
            .write_headers(&mem, &plan)
            .map_err(|c| self.corrupt(c.0))?;
        if !mem.write(off, item.head) || !mem.write(off + item.head.len() as u64, item.body) {
            return Err(self.corrupt("payload out of bounds"));
        }
        let s = &mut self.state;
        s.ring.commit_push(&plan);
        s.unfinished = s.unfinished.saturating_add(1);
        self.wake_items = true;
        self.commit();
        sh.traffic().count(true, 1, len);
        Ok(true)
    }

    /// Shrinks an idle ring back to its initial size and gives the memory
    /// back, once it has stayed empty for [`SHRINK_AFTER`]. Returns when to
    /// look again if it is empty but not yet idle long enough.
    pub(crate) fn shrink_if_idle(&mut self) -> Option<Instant> {
        let sh = self.sh;
        let s = &mut self.state;
        if s.ring.count != 0 || s.ring.cap <= sh.min_capacity || s.empty_since == 0 {
            return None;
        }
        let idle = Duration::from_nanos(monotonic_ns().saturating_sub(s.empty_since));
        if idle < SHRINK_AFTER {
            return Some(Instant::now() + (SHRINK_AFTER - idle));
        }
        let old = s.ring.cap;
        s.ring.shrink_empty(sh.min_capacity);
        self.commit();
        // Still under the lock: nobody can grow into this range yet.
        let _ = sh
            .seg
            .release(DATA_OFFSET + sh.min_capacity, old - sh.min_capacity);
        None
    }

    /// Doubles the ring, reserving the new memory first.
    fn grow(&mut self, mem: &DataArea<'_>) -> Result<()> {
        let cap = self.state.ring.cap;
        self.sh.seg.allocate(DATA_OFFSET + cap, cap).map_err(|e| {
            Error::io(
                format!(
                    "growing queue {:?} to {} bytes (is /dev/shm full? see --shm-size)",
                    self.sh.name,
                    2 * cap
                ),
                e,
            )
        })?;
        self.state.ring.grow(mem).map_err(|c| self.corrupt(c.0))?;
        self.commit();
        Ok(())
    }

    /// Pops up to `max` items. `f` sees each item's bytes before it is
    /// removed and answers whether to take it; a refused item is still
    /// removed if it is the first (so a bad item never blocks the queue), and
    /// otherwise left for the next call.
    fn pop_into(&mut self, max: usize, f: &mut impl FnMut(&[u8]) -> bool) -> Result<usize> {
        let sh = self.sh;
        let mem = sh.data()?;
        let mut n = 0;
        let mut got_bytes = 0u64;
        while n < max {
            let Some(front) = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))? else {
                break;
            };
            let accepted = mem
                .read_with(front.off, front.len, &mut *f)
                .ok_or_else(|| self.corrupt("item out of bounds"))?;
            if !accepted && n > 0 {
                break;
            }
            let s = &mut self.state;
            s.ring.pop(&front);
            // Counters come from shared memory: never trust them not to wrap.
            got_bytes = got_bytes.wrapping_add(front.len);
            if sh.kind == Kind::Queue {
                s.unfinished = s.unfinished.saturating_sub(1);
            }
            n += 1;
            if !accepted {
                break;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        // Only a ring above its minimum can shrink, so only then is the
        // clock read (a queue of small items never pays for it).
        if self.state.ring.count == 0 && self.state.ring.cap > sh.min_capacity {
            self.state.empty_since = monotonic_ns();
        }
        if sh.kind == Kind::Joinable {
            self.journal(sh.slot, OP_TAKE, n as u64);
        }
        self.commit();
        self.wake_space = true;
        sh.traffic().count(false, n as u64, got_bytes);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> CreateOptions {
        CreateOptions {
            kind: Kind::Queue,
            fingerprint: 0,
            maxsize: 0,
            min_capacity: 4096,
            max_capacity: 1 << 20,
            persistent: false,
        }
    }

    #[test]
    fn last_detach_unlinks_and_open_fails_after() {
        let name = format!("test-unlink-{}", std::process::id());
        let a = Shared::create(&name, &opts()).unwrap();
        let b = Shared::open(
            &name,
            Expect {
                kind: None,
                fingerprint: 0,
            },
        )
        .unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one attachment per process");
        drop(a);
        assert!(std::path::Path::new(&format!("/dev/shm/procq-{name}")).exists());
        drop(b);
        assert!(!std::path::Path::new(&format!("/dev/shm/procq-{name}")).exists());
        assert!(matches!(
            Shared::open(
                &name,
                Expect {
                    kind: None,
                    fingerprint: 0
                }
            ),
            Err(Error::NotFound(_))
        ));
    }
}

/// Hostile and corrupted segments: every check that guards against them.
#[cfg(test)]
mod hostile {
    use super::*;
    use crate::queue::Queue;
    use std::mem::offset_of;
    use std::os::unix::fs::FileExt;

    fn path(name: &str) -> String {
        format!("/dev/shm/procq-{name}")
    }

    fn file(name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path(name))
            .unwrap()
    }

    fn poke(name: &str, offset: usize, bytes: &[u8]) {
        file(name).write_all_at(bytes, offset as u64).unwrap();
    }

    fn state_offset(q: &Queue<Vec<u8>>, field: usize) -> usize {
        let cur = q.handle.shared().header().current.load(Ordering::Relaxed) as usize;
        offset_of!(Header, states) + cur * std::mem::size_of::<StateCell>() + field * 8
    }

    /// Removes a deliberately corrupted queue, which cannot clean up after
    /// itself (its last user cannot take the lock to see it is the last).
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = crate::remove(&self.0);
        }
    }

    fn queue(tag: &str) -> (String, Queue<Vec<u8>>, Cleanup) {
        let name = format!("hostile-{tag}-{}", std::process::id());
        let q = crate::Builder::new()
            .name(&name)
            .capacity_bytes(4096)
            .build::<Vec<u8>>()
            .unwrap();
        (name.clone(), q, Cleanup(name))
    }

    fn expect_invalid<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(e @ Error::InvalidQueue { .. }) => e.to_string(),
            other => panic!("expected InvalidQueue, got {other:?}"),
        }
    }

    #[test]
    fn foreign_files_are_refused() {
        let name = format!("hostile-foreign-{}", std::process::id());
        let _cleanup = Cleanup(name.clone());
        std::fs::write(path(&name), vec![0xA5u8; 200_000]).unwrap();
        let msg = expect_invalid(Queue::<u8>::open(&name));
        assert!(msg.contains("not a procq queue"), "{msg}");
        std::fs::write(path(&name), b"tiny").unwrap();
        expect_invalid(Queue::<u8>::open(&name));
        // A huge sparse file is refused before it is mapped.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path(&name))
            .unwrap();
        f.set_len(DATA_OFFSET + MAX_CAPACITY_LIMIT + 1).unwrap();
        expect_invalid(Queue::<u8>::open(&name));
        std::fs::remove_file(path(&name)).unwrap();
    }

    #[test]
    fn other_layout_versions_and_bad_limits_are_refused() {
        let (name, q, _cleanup) = queue("version");
        poke(&name, offset_of!(Header, version), &7u32.to_le_bytes());
        let msg = expect_invalid(
            Queue::<Vec<u8>>::open(&name)
                .map(|_| ())
                .or_else(|e| match e {
                    // The same process reuses its attachment; inspect reads afresh.
                    Error::InvalidQueue { .. } => Err(e),
                    _ => Ok(()),
                })
                .and_then(|()| Shared::inspect(&name).map(|_| ())),
        );
        assert!(msg.contains("layout version 7"), "{msg}");
        poke(
            &name,
            offset_of!(Header, version),
            &LAYOUT_VERSION.to_le_bytes(),
        );
        poke(&name, offset_of!(Header, max_capacity), &3u64.to_le_bytes());
        expect_invalid(Shared::inspect(&name).map(|_| ()));
        drop(q);
    }

    #[test]
    fn corrupt_state_gives_errors_not_panics() {
        let (name, q, _cleanup) = queue("state");
        q.put(&vec![1; 10]).unwrap();
        // tail beyond head + capacity
        poke(&name, state_offset(&q, 1), &u64::MAX.to_le_bytes());
        let msg = expect_invalid(q.get_nowait());
        assert!(msg.contains("corrupted"), "{msg}");
        expect_invalid(q.put(&vec![2; 10]));
        assert_eq!(q.qsize(), 0, "qsize is infallible and says 0");
        expect_invalid(q.stats());
    }

    #[test]
    fn corrupt_records_give_errors_not_panics() {
        for (i, garbage) in [
            (0usize, *b"JUNK"),        // unknown record kind
            (8, *b"\xff\xff\xff\x7f"), // length far past the tail
            (0, *b"PAD_"),             // padding that does not fit
        ] {
            let (name, q, _cleanup) = queue(&format!("record{i}"));
            q.put(&vec![1; 100]).unwrap();
            poke(&name, DATA_OFFSET as usize + i, &garbage);
            let msg = expect_invalid(q.get_nowait());
            assert!(msg.contains("corrupted"), "{msg}");
        }
    }

    #[test]
    fn undecodable_item_is_removed_and_the_next_one_is_fine() {
        let (name, q, _cleanup) = queue("decode");
        q.put(&vec![1; 10]).unwrap();
        q.put(&vec![2; 10]).unwrap();
        // First record's payload starts with the varint length 10: claim 11.
        poke(&name, DATA_OFFSET as usize + 16, &[11]);
        assert!(matches!(q.get_nowait(), Err(Error::Codec(_))));
        assert_eq!(q.get_nowait().unwrap(), vec![2; 10]);
    }

    #[test]
    fn a_lock_held_by_a_dead_pid_without_robust_handover_is_reported() {
        let (name, q, _cleanup) = queue("deadlock");
        // Forge a mutex that looks held by a thread that does not exist (what
        // a corrupted segment could contain), with a dead owner pid stamped.
        let m = offset_of!(Header, lock);
        let dead: u32 = 0x3fff_fff0;
        poke(&name, m, &dead.to_le_bytes()); // glibc's __lock word: held
        poke(&name, m + crate::sync::OWNER_OFFSET, &dead.to_le_bytes()); // procq's owner stamp
        let t = Instant::now();
        let msg = expect_invalid(q.get_nowait());
        assert!(msg.contains("dead process"), "{msg}");
        assert!(t.elapsed() < Duration::from_secs(10), "reported, not hung");
    }
}
