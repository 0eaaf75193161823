//! Surviving `SIGBUS` on procq's own mappings: a truncated segment becomes
//! an error instead of killing the process.
//!
//! # The problem
//!
//! A segment is a file in `/dev/shm`. Any process of the same user may
//! `ftruncate` it while others have it mapped. Touching a mapped page that
//! now lies beyond the end of the file raises `SIGBUS`, whose default action
//! kills the process — a consumer blocked in `get` or copying an item dies
//! with it. (Writing to a hole when `/dev/shm` is full does the same; procq
//! reserves its pages with `fallocate` first, but a hostile process can
//! punch holes.) Linux offers no way to forbid truncation of a named tmpfs
//! file: file seals (`F_SEAL_SHRINK`) exist only for `memfd`s, and a
//! segment must have a name.
//!
//! # What this module does
//!
//! Every segment registers its address range here while it is mapped. A
//! process-wide `SIGBUS` handler, installed when the first segment is
//! mapped, looks at the faulting address:
//!
//! - inside a registered range: it maps anonymous zero-filled memory over
//!   the faulting page and up to [`WINDOW`] bytes after it (`MAP_FIXED`,
//!   never past the end of the range), marks the range *faulted* and
//!   returns, so the faulting instruction runs again on the new memory.
//!   The operation then sees [`Guard::faulted`] and fails with
//!   `Error::InvalidQueue` ("segment file was truncated…"), and so does
//!   every later operation on that mapping: the queue is destroyed — its
//!   items were in the truncated part of the file.
//! - anywhere else, or a `SIGBUS` sent with `kill`: it hands the signal to
//!   the handler that was installed before (for Rust programs, std's stack
//!   overflow handler), or, if that was the default action, restores the
//!   default action so that the fault kills the process exactly as it
//!   would have without procq.
//!
//! The anonymous memory is private to this process: writes to it reach
//! nobody, and the other processes that use the segment take their own
//! faults and fail the same way. It is unmapped with the segment.
//!
//! Limits (also in docs/guarantees.md): a program that installs its own `SIGBUS`
//! handler after procq and does not pass procq's faults on, or that blocks
//! `SIGBUS` in the faulting thread, still dies; so does a process whose
//! `mmap` of the replacement memory fails (address-space or overcommit
//! limits). The registry is a lock-free list of fixed cells, read with a
//! sequence lock, so the handler takes no lock and allocates nothing.
//!
//! Why map memory instead of skipping the faulting instruction (what the
//! JVM does for its "unsafe memory access" errors): skipping needs an
//! instruction decoder per architecture and leaves `memcpy` half done;
//! new pages let any code, compiled or library, run to completion, and the
//! *faulted* flag tells procq that what it read or wrote is meaningless.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Most bytes mapped over per fault. A copy that runs on through many
/// truncated pages faults once per window; a window bounds what one fault
/// maps (a segment may span a terabyte of address space).
pub(crate) const WINDOW: usize = 16 << 20;

/// Cells per chunk of the registry.
const CHUNK: usize = 64;

/// One registered mapping.
struct Cell {
    /// Claimed by a segment.
    used: AtomicBool,
    /// Sequence lock: odd while `start`/`len` change.
    seq: AtomicU64,
    /// First byte of the mapping.
    start: AtomicUsize,
    /// Length in bytes (0: empty cell).
    len: AtomicUsize,
    /// A fault in this range was repaired: the segment is unusable.
    faulted: AtomicBool,
}

/// A chunk of cells; chunks are allocated when all cells are in use and
/// never freed, so the handler can walk them at any time.
struct Chunk {
    cells: [Cell; CHUNK],
    next: *mut Chunk,
}

/// Head of the chunk list (newest first).
static CHUNKS: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());
/// The disposition before ours, to chain to.
static PREVIOUS: OnceLock<Previous> = OnceLock::new();
/// The system's page size, read before the handler is installed.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);

/// `struct sigaction` is plain data; this wrapper only makes it storable in
/// a static.
struct Previous(libc::sigaction);
// SAFETY: the value is written once, before the handler can read it, and
// never changed; it holds no pointer that is dereferenced as Rust data.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

/// A registered mapping; unregisters on drop. Drop it *before* unmapping,
/// so that the range never covers somebody else's later mapping.
pub(crate) struct Guard {
    cell: &'static Cell,
}

impl Guard {
    /// Whether a fault in this mapping was repaired: its contents are gone.
    #[inline]
    pub(crate) fn faulted(&self) -> bool {
        self.cell.faulted.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let c = self.cell;
        c.seq.fetch_add(1, Ordering::AcqRel);
        c.len.store(0, Ordering::Release);
        c.start.store(0, Ordering::Release);
        c.seq.fetch_add(1, Ordering::AcqRel);
        c.used.store(false, Ordering::Release);
    }
}

/// Registers `[start, start + len)`, installing the handler on first use.
pub(crate) fn register(start: *mut u8, len: usize) -> Guard {
    install();
    let cell = claim();
    cell.faulted.store(false, Ordering::Relaxed);
    cell.seq.fetch_add(1, Ordering::AcqRel);
    cell.start.store(start as usize, Ordering::Release);
    cell.len.store(len, Ordering::Release);
    cell.seq.fetch_add(1, Ordering::AcqRel);
    Guard { cell }
}

fn cells() -> impl Iterator<Item = &'static Cell> {
    let mut chunk = CHUNKS.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: chunks are leaked boxes, never freed; `next` is written
        // before the chunk is published.
        let c = unsafe { chunk.as_ref()? };
        chunk = c.next;
        Some(&c.cells)
    })
    .flatten()
}

fn claim() -> &'static Cell {
    loop {
        if let Some(cell) = cells().find(|c| {
            c.used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) {
            return cell;
        }
        let chunk = Box::leak(Box::new(Chunk {
            cells: std::array::from_fn(|_| Cell {
                used: AtomicBool::new(false),
                seq: AtomicU64::new(0),
                start: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                faulted: AtomicBool::new(false),
            }),
            next: ptr::null_mut(),
        }));
        let mut head = CHUNKS.load(Ordering::Acquire);
        loop {
            chunk.next = head;
            match CHUNKS.compare_exchange(head, chunk, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }
}

/// Installs the handler once per process.
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf, sigaction and sigemptyset are called with valid
        // pointers to local, zero-initialized structs.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE_SIZE.store(page as usize, Ordering::Relaxed);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, ptr::null(), &mut old) != 0 {
                return;
            }
            // Stored before ours is live: the handler always finds it.
            let _ = PREVIOUS.set(Previous(old));
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(libc::SIGBUS, &new, ptr::null_mut());
        }
    });
}

/// The registered cell containing `addr`, with its range.
fn find(addr: usize) -> Option<(&'static Cell, usize, usize)> {
    for cell in cells() {
        // A bounded number of tries: a cell changing under us belongs to a
        // segment being mapped or unmapped, which cannot be the one that
        // faulted (its owner holds it while using it).
        for _ in 0..4 {
            let s1 = cell.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                continue;
            }
            let start = cell.start.load(Ordering::Acquire);
            let len = cell.len.load(Ordering::Acquire);
            if cell.seq.load(Ordering::Acquire) != s1 {
                continue;
            }
            if len != 0 && addr >= start && addr - start < len {
                return Some((cell, start, len));
            }
            break;
        }
    }
    None
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; the handler restores it before it
    // returns so the interrupted code never sees a changed errno.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code > 0: raised by the kernel for a fault (not kill/sigqueue).
    let repaired =
        code > 0 && find(addr).is_some_and(|(cell, start, len)| repair(cell, start, len, addr));
    if !repaired {
        chain(sig, info, ctx, code > 0);
    }
    // SAFETY: see above.
    unsafe { *libc::__errno_location() = errno };
}

/// Maps zero-filled private memory over the faulting page (and up to
/// [`WINDOW`] after it, within the range) and marks the range faulted.
fn repair(cell: &Cell, start: usize, len: usize, addr: usize) -> bool {
    let page = addr & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
    let page = page.max(start); // mappings are page aligned; stay inside
    let end = (start + len).min(page.saturating_add(WINDOW));
    // SAFETY: `[page, end)` lies inside a mapping procq owns and keeps
    // registered until it is unmapped (`Guard` is dropped first). Replacing
    // its pages with anonymous memory is what a process truncating the
    // file has already done to their contents: procq's code treats this
    // memory as shared bytes that may change at any time (every access is
    // a bounds-checked copy or an atomic), so new zero bytes break no Rust
    // invariant. mmap is a plain system call, safe in a signal handler.
    let p = unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            end - page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    cell.faulted.store(true, Ordering::Release);
    true
}

/// Passes a signal that is not ours to the previous disposition.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
    let previous = PREVIOUS.get().map(|p| &p.0);
    let action = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        if action == libc::SIG_IGN && !fault {
            return; // an ignored kill -BUS stays ignored
        }
        // SAFETY: sigaction and raise are async-signal-safe; the struct is
        // a zeroed local with the default disposition.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, ptr::null_mut());
            if !fault {
                // A signal sent with kill: deliver it again, now with the
                // default action, once this handler returns.
                libc::raise(sig);
            }
            // A fault re-executes the faulting instruction on return, which
            // faults again and now takes the default action.
        }
        return;
    }
    let flags = previous.map_or(0, |p| p.sa_flags);
    // SAFETY: `action` is the handler the program installed before procq,
    // called the way its flags say it expects to be called.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(action);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(action);
            f(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_file_mapping_faults_into_an_error_not_a_crash() {
        use std::os::fd::AsRawFd;
        let f = tempfile_in_shm();
        f.set_len(1 << 20).unwrap();
        let len = 1 << 20;
        // SAFETY: a fresh shared mapping of a file we own.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let guard = register(p.cast(), len);
        // SAFETY: in bounds of the mapping.
        unsafe { p.cast::<u8>().add(100).write_volatile(7) };
        assert!(!guard.faulted());
        f.set_len(4096).unwrap();
        // SAFETY: in bounds of the mapping; the page is beyond the end of
        // the file now, so this faults and the handler repairs it.
        let v = unsafe { p.cast::<u8>().add(8192).read_volatile() };
        assert_eq!(v, 0);
        assert!(guard.faulted());
        // The first page is still the file's.
        // SAFETY: in bounds.
        assert_eq!(unsafe { p.cast::<u8>().add(100).read_volatile() }, 7);
        drop(guard);
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(p, len) };
    }

    fn tempfile_in_shm() -> std::fs::File {
        let path = format!("/dev/shm/procq-sigbus-unit-{}", std::process::id());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
