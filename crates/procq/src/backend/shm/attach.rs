//! Attaching to a queue segment and letting go of it.
//!
//! [`Shared::create`] makes a segment and its header; [`Shared::open`]
//! maps one, validates its header, and claims a slot in its attachment
//! table; [`Shared::inspect`] maps one without a slot (for read-outs). A
//! `Shared` releases its slot on drop, unlinking the name when the last
//! process leaves.
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
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::kind::Kind;

use super::layout::*;
use super::liveness::{fork_generation, LiveFd, Token};
use super::locked::within;
use super::ring::Ring;
use super::segment::Segment;
use super::shared::{Shared, MAX_CAPACITY_LIMIT};
use super::sync;
use super::watch::Watchers;

/// How long attaching and detaching wait for the lock. Giving up is safe:
/// an attacher reports `LockBusy`; a detacher leaves its slot behind, to be
/// reclaimed once its process has exited (its token dies with it).
const ATTACH_PATIENCE: Duration = Duration::from_secs(5);
/// How long an opener waits for a creator that is still initializing.
const INIT_PATIENCE: Duration = Duration::from_secs(5);

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

/// Opens the token descriptor of queue `name` (mapped by `seg`).
fn live_fd(name: &str, seg: &Segment) -> Result<LiveFd> {
    let path = format!("/{}{name}", super::segment::PREFIX);
    LiveFd::open(&path, seg.fd()).map_err(|e| match e.raw_os_error() {
        Some(libc::ESTALE) => Error::invalid(name, "its name now refers to another file"),
        Some(libc::ENOENT) => Error::NotFound(name.to_owned()),
        _ => Error::io(format!("opening queue {name:?} for its liveness lock"), e),
    })
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
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
        h.committed.store(&State {
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
            pacing: sync::Pacing::default(),
            loaning: AtomicBool::new(false),
            watchers: Watchers::default(),
        });
        if !opts.persistent {
            registry().insert(&shared);
        }
        Ok(shared)
    }

    /// Attaches to an existing queue, reusing this process's attachment.
    pub(crate) fn open(name: &str, expect: Expect) -> Result<Arc<Shared>> {
        crate::address::validate_name(name)?;
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
            || min_capacity < super::ring::ALIGN
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
            pacing: sync::Pacing::default(),
            loaning: AtomicBool::new(false),
            watchers: Watchers::default(),
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
