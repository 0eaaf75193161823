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
//! handles it holds. A forked child starts with an empty registry (see
//! [`registry`]) and attaches as itself.
//!
//! Every attachment holds a liveness token (see `liveness`): its slot
//! records the token, and the queue lock's owner stamp names it, so that
//! others can tell whether it lives — across PID namespaces, without
//! `/proc`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::layout::*;
use crate::liveness::{fork_generation, LiveFd, Token};
use crate::ring::{record_size, Memory, Ring, RECORD_HEADER};
use crate::shm::{DataArea, Segment};
use crate::sync::{self, Acquired, Holder, Holders, Wake};

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
/// How often a blocked `put`/`get` wakes to check that its segment still
/// exists (a truncated file's waiters can never be woken otherwise).
const INTACT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often `join` re-checks for dead consumers while it waits.
const JOIN_SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long a call with a shorter (or no: `_nowait`) timeout, and an
/// inspection, waits for the lock before it reports [`Error::LockBusy`]:
/// critical sections take microseconds, so a holder that keeps the lock
/// this long is stopped or stuck, not slow.
pub(crate) const LOCK_PATIENCE: Duration = Duration::from_secs(1);
/// How long attaching and detaching wait for the lock. Giving up is safe:
/// an attacher reports `LockBusy`; a detacher leaves its slot behind, to be
/// reclaimed once its process has exited (its token dies with it).
const ATTACH_PATIENCE: Duration = Duration::from_secs(5);
/// How long an opener waits for a creator that is still initializing.
const INIT_PATIENCE: Duration = Duration::from_secs(5);
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

    /// Until when a call blocking like this waits for the queue lock: its
    /// own deadline, but at least [`LOCK_PATIENCE`] from now; no limit for
    /// a call that waits forever.
    fn lock_deadline(self) -> Option<Instant> {
        let patient = Instant::now() + LOCK_PATIENCE;
        match self {
            Block::Forever => None,
            Block::No => Some(patient),
            Block::Until(d) => Some(d.max(patient)),
        }
    }
}

/// `Some(now + d)`.
fn within(d: Duration) -> Option<Instant> {
    Some(Instant::now() + d)
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

/// Per-process registry of attachments, keyed by queue name, for one fork
/// generation: a forked child never touches its parent's registry (whose
/// mutex another thread may have held at the fork) and starts a new one.
struct Registry {
    /// [`fork_generation`] of the process that made it.
    generation: u64,
    /// Attachments by queue name. Locked only to look up and insert, never
    /// while attaching (which may wait for the queue lock).
    map: Mutex<HashMap<String, Weak<Shared>>>,
}

/// The current [`Registry`]; replaced (and the old one leaked) in a child.
static REGISTRY: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());

/// This process's registry (see [`Registry`]).
fn registry() -> &'static Registry {
    let generation = fork_generation();
    loop {
        let current = REGISTRY.load(Ordering::Acquire);
        // SAFETY: registries are leaked boxes, never freed once published.
        if let Some(r) = unsafe { current.as_ref() } {
            if r.generation == generation {
                return r;
            }
        }
        let fresh = Box::into_raw(Box::new(Registry {
            generation,
            map: Mutex::new(HashMap::new()),
        }));
        match REGISTRY.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just published; never freed.
            Ok(_) => return unsafe { &*fresh },
            // SAFETY: never published, so ours alone.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Shared>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live, usable attachment to `name` made by this process.
    fn get(&self, name: &str) -> Option<Arc<Shared>> {
        self.map()
            .get(name)
            .and_then(Weak::upgrade)
            .filter(|s| s.header().unlinked.load(Ordering::Relaxed) == 0)
    }

    fn insert(&self, shared: &Arc<Shared>) {
        self.map()
            .insert(shared.name.clone(), Arc::downgrade(shared));
    }

    /// Drops the entry for `name` if nobody uses it any more.
    fn forget(&self, name: &str) {
        let mut map = self.map();
        if map.get(name).is_some_and(|w| w.strong_count() == 0) {
            map.remove(name);
        }
    }
}

/// This process's attachment to one queue.
pub(crate) struct Shared {
    /// Queue name (without the `/dev/shm` prefix).
    name: String,
    /// The mapping.
    seg: Segment,
    /// This attachment's liveness token (its lock stamp and slot owner).
    token: Token,
    /// This process's pid (for messages; recorded in the slot).
    pid: u32,
    /// [`fork_generation`] when attached: in a forked child this attachment
    /// (its token, its slot) is the parent's and must not be used.
    generation: u64,
    /// An inspection-only attachment: no slot, and its locks give up after
    /// [`LOCK_PATIENCE`].
    inspector: bool,
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

// SAFETY: all shared-memory access goes through atomics or byte copies made
// while holding the queue lock; the raw pointers in `Segment` stay valid for
// the life of `Shared`.
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

/// Opens the token descriptor of queue `name` (mapped by `seg`).
fn live_fd(name: &str, seg: &Segment) -> Result<LiveFd> {
    let path = format!("/{}{name}", crate::shm::PREFIX);
    LiveFd::open(&path, seg.fd()).map_err(|e| match e.raw_os_error() {
        Some(libc::ESTALE) => Error::invalid(name, "its name now refers to another file"),
        Some(libc::ENOENT) => Error::NotFound(name.to_owned()),
        _ => Error::io(format!("opening queue {name:?} for its liveness lock"), e),
    })
}

/// Tells [`sync::RobustLock`] whether a stamp's owner lives, from this
/// attachment's point of view.
struct Oracle<'a> {
    token: &'a Token,
    table: &'a [TokenCell],
}

impl Holders for Oracle<'_> {
    fn holder(&self, stamp: u32) -> Holder {
        self.token.holder_of(self.table, stamp)
    }

    fn is_valid(&self, stamp: u32) -> bool {
        Token::stamp_is_valid(stamp)
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
        let pid = std::process::id();
        let fail = |e: Error| {
            let _ = seg.unlink_if_same(name);
            e
        };
        let fd = live_fd(name, &seg).map_err(fail)?;
        // Openers wait while this is held rather than take the zeroed
        // header for a dead creator's.
        fd.begin_init()
            .map_err(|e| fail(Error::io("locking a new queue for its creation", e)))?;
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
        h.creator_pid.store(pid, Ordering::Relaxed);
        h.created_unix_ms.store(now_unix_ms(), Ordering::Relaxed);
        // The lock word is zero (free) in a fresh segment.
        let token = Token::claim(fd, &h.tokens, pid)
            .map_err(|e| fail(Error::io("claiming a liveness token", e)))?;
        h.states[0].store(&State {
            ring: Ring::new(min_capacity),
            ..State::default()
        });
        h.current.store(0, Ordering::Relaxed);
        // A persistent queue is owned by nobody: it has no slot to release.
        let slot = if opts.persistent { usize::MAX } else { 0 };
        if !opts.persistent {
            let (owner, gen) = token.owner();
            h.slots[0].pid.store(pid, Ordering::Relaxed);
            h.slots[0].owner_gen.store(gen, Ordering::Relaxed);
            h.slots[0].owner.store(owner, Ordering::Relaxed);
        }
        h.magic.store(MAGIC, Ordering::Release);
        token.fd().end_init();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            seg,
            token,
            pid,
            generation: fork_generation(),
            inspector: false,
            slot,
            kind: opts.kind,
            maxsize: opts.maxsize,
            max_capacity,
            min_capacity,
            spin: sync::may_spin(),
            spin_budget: AtomicU32::new(SPIN_MAX / 4),
        });
        if !opts.persistent {
            registry().insert(&shared);
        }
        Ok(shared)
    }

    /// Attaches to an existing queue, reusing this process's attachment.
    pub(crate) fn open(name: &str, expect: Expect) -> Result<Arc<Shared>> {
        crate::shm::validate_name(name)?;
        let reg = registry();
        if let Some(existing) = reg.get(name) {
            existing.check_expect(expect)?;
            return Ok(existing);
        }
        // Attach without holding the registry: attaching waits for the
        // queue lock, and a fork meanwhile must find the registry free.
        let shared = Arc::new(Shared::attach(name, expect, true)?);
        let mut map = reg.map();
        if let Some(raced) = map
            .get(name)
            .and_then(Weak::upgrade)
            .filter(|s| s.header().unlinked.load(Ordering::Relaxed) == 0)
        {
            // Another thread attached meanwhile: use its attachment (ours
            // detaches when dropped, after the registry is unlocked).
            drop(map);
            drop(shared);
            return Ok(raced);
        }
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
        let fd = live_fd(name, &seg)?;
        // The creator publishes `magic` last, then drops its init lock: wait
        // while it holds that lock (and a moment for it to take it).
        let started = Instant::now();
        loop {
            match h.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 if !seg.faulted()
                    && (started.elapsed() < Duration::from_millis(200)
                        || (started.elapsed() < INIT_PATIENCE && fd.init_in_progress())) =>
                {
                    std::thread::sleep(Duration::from_millis(1))
                }
                0 if h.magic.load(Ordering::Acquire) == MAGIC => break,
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
        let pid = std::process::id();
        // Validated enough to write to: claim a token in its table.
        let token = Token::claim(fd, &h.tokens, pid)
            .map_err(|e| Error::io(format!("claiming a liveness token of queue {name:?}"), e))?;
        let mut shared = Shared {
            name: name.to_owned(),
            seg,
            token,
            pid,
            generation: fork_generation(),
            inspector: !claim,
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
            let mut g = shared.lock_until(within(ATTACH_PATIENCE))?;
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

    /// [`fork_generation`] this attachment belongs to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the lock, repairing the queue if its last holder died: waits
    /// as long as a live holder keeps it, or, for an inspection-only
    /// attachment, [`LOCK_PATIENCE`].
    pub(crate) fn lock(&self) -> Result<Locked<'_>> {
        self.lock_until(self.inspector.then(|| Instant::now() + LOCK_PATIENCE))
    }

    /// Takes the lock, waiting for a live holder until `deadline` (`None`:
    /// without limit), and repairs the queue if its last holder died.
    pub(crate) fn lock_until(&self, deadline: Option<Instant>) -> Result<Locked<'_>> {
        let h = self.header();
        let oracle = Oracle {
            token: &self.token,
            table: &h.tokens,
        };
        let acquired = h
            .lock
            .lock(self.token.stamp(), deadline, &oracle)
            .map_err(|busy| Error::LockBusy {
                name: self.name.clone(),
                pid: Token::pid_of(&h.tokens, busy.stamp),
                waited: busy.waited,
            })?;
        let mut g = Locked {
            sh: self,
            state: h.state(),
            wake_items: false,
            wake_space: false,
            wake_done: false,
        };
        self.check_intact()?;
        if acquired == Acquired::OwnerDied {
            h.counters.recoveries.fetch_add(1, Ordering::Relaxed);
            // The committed state is consistent by construction; what is left
            // is the journal and the slots of processes that died.
            g.validate()?;
            g.apply_journal();
            g.sweep();
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
        let lock_deadline = block.lock_deadline();
        let mut waiter = Waiter::new(self, block, Want::Space);
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
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
        let lock_deadline = block.lock_deadline();
        let mut waiter = Waiter::new(self, block, Want::Space);
        while done < items.len() {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
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
        let lock_deadline = block.lock_deadline();
        let mut waiter = Waiter::new(self, block, Want::Items);
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
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
    ///
    /// The task is credited to this process's slot if it took any, else to
    /// any process that did: `multiprocessing` lets one process `get` and
    /// another call `task_done`, and a task must not be counted done again
    /// when its getter leaves. So `unfinished` stays equal to the items in
    /// the ring plus the tasks taken and not done over all slots.
    pub(crate) fn task_done(&self) -> Result<()> {
        let mut g = self.lock()?;
        let s = &mut g.state;
        if s.unfinished <= s.ring.count {
            return Err(Error::TaskDoneTooOften);
        }
        s.unfinished -= 1;
        let h = self.header();
        let taken = |slot: &Slot| {
            (slot.owner.load(Ordering::Relaxed) != 0)
                .then(|| slot.tasks.load(Ordering::Relaxed))
                .filter(|&t| t > 0)
        };
        let credited = self
            .slot_ref()
            .and_then(taken)
            .map(|t| (self.slot, t))
            .or_else(|| {
                h.slots
                    .iter()
                    .enumerate()
                    .find_map(|(i, slot)| taken(slot).map(|t| (i, t)))
            });
        if let Some((i, t)) = credited {
            g.journal(i, OP_SET, t - 1);
        }
        g.wake_done = g.state.unfinished == 0;
        g.commit();
        Ok(())
    }

    /// Waits until every item put has been marked done.
    pub(crate) fn join(&self, block: Block, closed: &AtomicBool) -> Result<()> {
        let lock_deadline = block.lock_deadline();
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
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

    /// The committed state (takes the lock: exact; gives up with
    /// `LockBusy` after [`LOCK_PATIENCE`]).
    pub(crate) fn state(&self) -> Result<State> {
        Ok(self.lock_until(within(LOCK_PATIENCE))?.state)
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

    /// Whether the mapping lost its file's pages, as an error.
    fn check_intact(&self) -> Result<()> {
        if self.seg.faulted() {
            return Err(Error::invalid(
                &self.name,
                "segment file was truncated by another process (or a page could not be \
                 allocated in /dev/shm): the queue's contents are gone",
            ));
        }
        Ok(())
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

impl Drop for Shared {
    fn drop(&mut self) {
        // A forked child inherits the parent's attachment but not its slot.
        if self.slot == usize::MAX || self.generation != fork_generation() {
            return;
        }
        registry().forget(&self.name);
        // Bounded: a slot left behind is reclaimed once this process is gone.
        let Ok(mut g) = self.lock_until(within(ATTACH_PATIENCE)) else {
            return;
        };
        g.shrink_if_idle();
        // Tasks this process took and never finished are written off, as
        // for a process that died: `join` must not wait for them forever.
        g.reclaim(self.slot);
        g.sweep();
        let h = self.header();
        let persistent = h.flags.load(Ordering::Relaxed) & FLAG_PERSISTENT != 0;
        if !persistent && h.slots.iter().all(|s| s.pid.load(Ordering::Relaxed) == 0) {
            let _ = g.retire_name();
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
        // Nobody can wake a sleeper whose futex word's page was truncated
        // away: wake up now and then to notice (the next lock reports it).
        let tick = Instant::now() + INTACT_CHECK_EVERY;
        let until = Some(until.map_or(tick, |d| d.min(tick)));
        let key = ev.prepare();
        drop(g);
        self.spun = false;
        let woke = ev.wait(key, until);
        self.sh.check_intact()?;
        if woke == Wake::TimedOut && until == self.block.deadline() {
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
        h.lock.unlock(self.sh.token.stamp());
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

    /// Removes the name of a queue nobody uses any more, exactly once: only
    /// the process that flags the segment as removed (under the lock) may,
    /// and only while the name still refers to this segment. A holder of a
    /// queue that was removed meanwhile (`procq::remove`) finds it flagged
    /// and leaves the name alone — it may belong to a new queue by now.
    /// The name goes before the flag is set, so a process killed in between
    /// leaves a nameless segment (harmless), never a flagged one that
    /// blocks the name.
    fn retire_name(&mut self) -> Result<bool> {
        let sh = self.sh;
        let h = sh.header();
        if h.unlinked.load(Ordering::Relaxed) != 0 {
            return Ok(false);
        }
        // On an error (the name could not be looked up or removed) the
        // segment stays openable, for `collect_garbage` to try again.
        let removed = sh.seg.unlink_if_same(&sh.name)?;
        h.unlinked.store(1, Ordering::Relaxed);
        Ok(removed)
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

    /// Records a slot update to apply right after the next commit.
    fn journal(&mut self, slot: usize, op: u64, arg: u64) {
        if slot >= MAX_SLOTS {
            return; // persistent creators have no slot
        }
        self.state.journal_slot = slot as u64 + 1;
        self.state.journal_op = op;
        // The journal keeps 32 bits of argument.
        self.state.journal_arg = arg.min(u64::from(u32::MAX));
        self.state.journal_gen = 0; // filled in by `commit`
    }

    /// Applies the committed journal entry to its slot unless already done.
    ///
    /// Idempotent: the entry holds the slot's new count (not a change to
    /// it), and the slot records the full 64-bit generation of the last entry
    /// it applied *after* applying it, so a replay after a crash between the
    /// two stores only stores the same values again.
    fn apply_journal(&self) {
        let s = &self.state;
        let Some(slot) = (s.journal_slot as usize)
            .checked_sub(1)
            .and_then(|i| self.sh.header().slots.get(i))
        else {
            return;
        };
        if slot.applied.load(Ordering::Relaxed) == s.journal_gen {
            return;
        }
        match s.journal_op {
            OP_SET => slot.tasks.store(s.journal_arg, Ordering::Relaxed),
            OP_RECLAIM => {
                slot.tasks.store(0, Ordering::Relaxed);
                slot.pid.store(0, Ordering::Relaxed);
                slot.owner_gen.store(0, Ordering::Relaxed);
                slot.owner.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        slot.applied.store(s.journal_gen, Ordering::Relaxed);
    }

    /// Claims a free slot for the calling process.
    fn claim_slot(&mut self) -> Result<usize> {
        let (owner, gen) = self.sh.token.owner();
        for attempt in 0..2 {
            let slots = &self.sh.header().slots;
            if let Some(i) = slots
                .iter()
                .position(|s| s.owner.load(Ordering::Relaxed) == 0)
            {
                let slot = &slots[i];
                // A fresh slot has "seen" the current journal entry, so a
                // later recovery never replays an old entry onto it.
                slot.tasks.store(0, Ordering::Relaxed);
                slot.applied
                    .store(self.state.journal_gen, Ordering::Relaxed);
                slot.traffic.retire_into(&self.sh.header().counters.retired);
                slot.pid.store(self.sh.pid, Ordering::Relaxed);
                slot.owner_gen.store(gen, Ordering::Relaxed);
                slot.owner.store(owner, Ordering::Relaxed);
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

    /// Reclaims the slots of processes that are no longer alive (their
    /// liveness tokens are gone: see `liveness`).
    pub(crate) fn sweep(&mut self) {
        let h = self.sh.header();
        for i in 0..MAX_SLOTS {
            let slot = &h.slots[i];
            let owner = slot.owner.load(Ordering::Relaxed);
            if owner == 0 || i == self.sh.slot {
                continue;
            }
            let gen = slot.owner_gen.load(Ordering::Relaxed);
            if !self.sh.token.is_alive(&h.tokens, owner, gen) {
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
        let taken = slot.tasks.load(Ordering::Relaxed);
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
        // The copy may have run into a truncated file (see `sigbus`).
        sh.check_intact()?;
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
            // What `f` saw may be zeros from a truncated file (see `sigbus`).
            sh.check_intact()?;
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
            let taken = sh.slot_ref().map_or(0, |s| s.tasks.load(Ordering::Relaxed));
            self.journal(sh.slot, OP_SET, taken.saturating_add(n as u64));
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
        // Owner-only, as procq makes them: what is checked is the content.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path(&name))
            .unwrap();
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

    /// Forges the queue lock's word, as a hostile or corrupted segment could.
    fn forge_lock(name: &str, word: u32) {
        poke(name, offset_of!(Header, lock), &word.to_le_bytes());
    }

    #[test]
    fn a_forged_lock_word_naming_nobody_is_taken_over_at_once() {
        let (name, q, _cleanup) = queue("forged");
        q.put(&vec![1; 10]).unwrap();
        // Stamp 0 with the waiter bit and a stamp with token index 0 name no
        // holder at all; all-ones garbage names a token nobody holds.
        for word in [1u32, 1 << 20, 0xffff_fffe, 0xffff_ffff] {
            forge_lock(&name, word);
            let t = Instant::now();
            assert_eq!(q.get_nowait().unwrap(), vec![1; 10], "{word:#x}");
            q.put(&vec![1; 10]).unwrap();
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{word:#x}: {:?}",
                t.elapsed()
            );
        }
        assert!(q.stats().unwrap().recoveries >= 4);
        let st = crate::stats(&name).unwrap();
        assert_eq!((st.items, st.attached_processes), (1, 1));
    }

    #[test]
    fn a_lock_word_naming_a_dead_or_reissued_token_is_taken_over() {
        let (name, q, _cleanup) = queue("deadstamp");
        q.put(&vec![1; 10]).unwrap();
        let sh = q.handle.shared();
        let h = sh.header();
        // A token nobody holds (index 2000), with its recorded generation,
        // and one whose generation has moved on.
        let cell = &h.tokens[1999];
        cell.gen.store(5, Ordering::Relaxed);
        for gen in [5u32, 4] {
            forge_lock(&name, (gen << 11 | 2000) << 1);
            let t = Instant::now();
            assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), vec![1; 10]);
            q.put(&vec![1; 10]).unwrap();
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        }
        // A word naming this very attachment's own token in a slot that
        // no thread holds is a live holder as far as anyone can tell: calls
        // with a deadline give up with LockBusy, naming this process.
        forge_lock(&name, sh.token.stamp() << 1);
        match q.get_nowait() {
            Err(Error::LockBusy { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected LockBusy, got {other:?}"),
        }
        forge_lock(&name, 0);
    }

    #[test]
    fn a_slot_replays_a_journal_entry_exactly_2_pow_32_commits_newer() {
        let name = format!("hostile-journal-{}", std::process::id());
        let _cleanup = Cleanup(name.clone());
        let q = crate::Builder::new()
            .name(&name)
            .build_joinable::<Vec<u8>>()
            .unwrap();
        q.put(&vec![1]).unwrap();
        q.put(&vec![2]).unwrap();
        q.get_nowait().unwrap();
        let sh = q.handle.shared();
        let h = sh.header();
        let slot = &h.slots[sh.slot];
        assert_eq!(slot.tasks.load(Ordering::Relaxed), 1);
        let seen = slot.applied.load(Ordering::Relaxed);
        // A committed entry (its process died before applying it) whose
        // generation matches what the slot saw in its low 32 bits only.
        let mut s = h.state();
        s.gen = seen + (1 << 32);
        s.journal_gen = s.gen;
        s.journal_slot = sh.slot as u64 + 1;
        s.journal_op = OP_SET;
        s.journal_arg = 2;
        let cur = h.current.load(Ordering::Relaxed) as usize;
        h.states[cur].store(&s);
        forge_lock(&name, 1); // the dead process's lock, taken over next
        assert_eq!(q.unfinished_tasks().unwrap(), 2);
        assert_eq!(slot.tasks.load(Ordering::Relaxed), 2, "entry replayed");
        assert_eq!(slot.applied.load(Ordering::Relaxed), seen + (1 << 32));
    }
}
