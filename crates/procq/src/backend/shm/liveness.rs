//! Who is alive: kernel-tracked liveness with open-file-description locks.
//!
//! A pid means nothing outside its PID namespace (containers share
//! `/dev/shm` across namespaces: `docker --ipc=host`, Kubernetes memory
//! volumes), and `/proc/<pid>` may not even be mounted. So procq never asks
//! "does pid N run?". Instead, every attachment to a queue — each process's
//! `Shared` (see `attach`), inspectors included — holds a
//! **token**: an OFD lock (`fcntl(F_OFD_SETLK)`) on one byte of the queue's
//! file, taken on a descriptor of its own and held for the attachment's
//! lifetime. OFD locks belong to the open file description, not to a pid:
//! they are visible to every process that opens the same file, whatever its
//! namespace, and the kernel drops them when the process dies (its last
//! descriptor of that description closes). Whether a token's holder lives
//! is one `F_OFD_GETLK` away.
//!
//! Tokens are numbered `0..MAX_TOKENS`; token `i` is the byte
//! [`TOKEN_LOCKS`]` + i` (far past the end of any segment: locks there do not
//! touch the data). An attacher claims the first byte it can lock — the
//! kernel arbitrates, so no shared state is needed to hand tokens out — and
//! then bumps that token's **generation** in the header's token table. A
//! token is named by (index, generation): the generation tells a holder that
//! died and whose index was claimed again from the new holder. The queue
//! lock's owner stamp is such a name (20 bits of generation, see
//! [`Token::stamp`]) and so is each attachment slot's owner (full 32 bits).
//!
//! **Fork.** A child shares its parent's open file descriptions, so an
//! inherited descriptor would keep the parent's token alive after the parent
//! died. Token descriptors are therefore registered in a process-wide list
//! that a `pthread_atfork` child handler closes (`close` is
//! async-signal-safe); the child attaches with tokens of its own. The
//! prepare handler waits for a thread that is between opening a descriptor
//! and registering it. Descriptors are also `O_CLOEXEC`.
//!
//! **Limits.** A process that closes descriptors it did not open (a
//! "close every fd" loop) drops its tokens and looks dead to the others.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

use super::layout::{TokenCell, MAX_TOKENS};
use super::sync::Holder;

/// Byte offset of token 0's lock byte in the segment file.
pub(crate) const TOKEN_LOCKS: i64 = 1 << 48;
/// Held by a creator while it initializes the header: an opener that finds
/// no magic number yet waits only while this byte is locked.
const INIT_LOCK: i64 = TOKEN_LOCKS - 1;
/// Bits of the token index (plus one) in a lock stamp.
const INDEX_BITS: u32 = 11;
const _: () = assert!(MAX_TOKENS < 1 << INDEX_BITS);
/// Bits of the generation in a lock stamp (the rest of 31 bits).
const STAMP_GEN_MASK: u32 = (1 << (31 - INDEX_BITS)) - 1;

/// Counts `fork()`s this process is a child of (see [`fork_generation`]).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Head of the list of token descriptors to close in a forked child.
static FDS: AtomicPtr<FdNode> = AtomicPtr::new(std::ptr::null_mut());
/// Threads between opening a token descriptor and registering it.
static OPENING: AtomicU32 = AtomicU32::new(0);
/// Set by the prepare handler while a fork is under way.
static FORKING: AtomicBool = AtomicBool::new(false);

/// One registered descriptor (`-1`: free for reuse). Never freed.
struct FdNode {
    fd: AtomicI32,
    next: AtomicPtr<FdNode>,
}

extern "C" fn on_fork_prepare() {
    FORKING.store(true, Ordering::SeqCst);
    while OPENING.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn on_fork_parent() {
    FORKING.store(false, Ordering::SeqCst);
}

extern "C" fn on_fork_child() {
    // Async-signal-safe: atomics and close(2) only.
    let mut node = FDS.load(Ordering::SeqCst);
    while !node.is_null() {
        // SAFETY: nodes are leaked boxes, never freed.
        let n = unsafe { &*node };
        let fd = n.fd.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: a token descriptor inherited from the parent, which no
            // handle of this child may use (they see the new generation).
            unsafe { libc::close(fd) };
        }
        node = n.next.load(Ordering::SeqCst);
    }
    OPENING.store(0, Ordering::SeqCst);
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    FORKING.store(false, Ordering::SeqCst);
}

fn register_fork_handlers() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handlers only touch atomics, yield and close.
        unsafe {
            libc::pthread_atfork(
                Some(on_fork_prepare),
                Some(on_fork_parent),
                Some(on_fork_child),
            )
        };
    });
}

/// A number that changes in the child of every `fork()`. Attachments
/// remember the value they were made under: one made under another value
/// belongs to the parent, and the child must attach afresh as itself.
pub(crate) fn fork_generation() -> u64 {
    register_fork_handlers();
    FORK_GENERATION.load(Ordering::SeqCst)
}

/// A token descriptor: a private open file description of a queue's file,
/// closed on drop, and closed in forked children by the atfork handler.
pub(crate) struct LiveFd {
    /// The descriptor (owned; see `Drop`).
    fd: RawFd,
    /// Its entry in the list the atfork child handler closes.
    node: &'static FdNode,
    /// [`fork_generation`] when opened: in a forked child the handler has
    /// closed `fd` already, and the number may belong to something else.
    generation: u64,
}

impl LiveFd {
    /// Opens `path` (a `/dev/shm` object name) again, as a new open file
    /// description, and checks that it is the very file `mapped` refers to.
    pub(crate) fn open(path: &str, mapped: BorrowedFd<'_>) -> io::Result<LiveFd> {
        register_fork_handlers();
        // Keep a fork from copying the descriptor before it is registered.
        loop {
            while FORKING.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            OPENING.fetch_add(1, Ordering::SeqCst);
            if !FORKING.load(Ordering::SeqCst) {
                break;
            }
            OPENING.fetch_sub(1, Ordering::SeqCst);
        }
        let opened = (|| {
            // Never through a symbolic link, never blocking on a FIFO planted
            // under the name (the inode check below catches any other file).
            use rustix::fs::OFlags;
            let fd = rustix::fs::open(
                format!("/dev/shm{path}").as_str(),
                OFlags::RDWR
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            let (a, b) = (rustix::fs::fstat(&fd)?, rustix::fs::fstat(mapped)?);
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                return Err(rustix::io::Errno::STALE);
            }
            Ok(LiveFd {
                generation: FORK_GENERATION.load(Ordering::SeqCst),
                node: register(fd.as_raw_fd()),
                fd: fd.into_raw_fd(),
            })
        })();
        OPENING.fetch_sub(1, Ordering::SeqCst);
        opened.map_err(io::Error::from)
    }

    fn fcntl(&self, cmd: libc::c_int, kind: libc::c_int, byte: i64) -> io::Result<libc::flock> {
        // SAFETY: `flock` is plain data; all-zero is a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind as _;
        fl.l_whence = libc::SEEK_SET as _;
        fl.l_start = byte;
        fl.l_len = 1;
        // SAFETY: `fd` is open (we own it); `fl` is a valid flock.
        if unsafe { libc::fcntl(self.fd, cmd, &mut fl) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(fl)
    }

    /// Takes the lock on `byte` for this description; `false` if another
    /// description holds it.
    pub(crate) fn try_lock(&self, byte: i64) -> io::Result<bool> {
        match self.fcntl(libc::F_OFD_SETLK, libc::F_WRLCK, byte) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases this description's lock on `byte`.
    pub(crate) fn unlock(&self, byte: i64) {
        let _ = self.fcntl(libc::F_OFD_SETLK, libc::F_UNLCK, byte);
    }

    /// Whether another open file description (in any process) holds a lock
    /// on `byte`. This description's own locks do not count.
    pub(crate) fn is_locked_by_other(&self, byte: i64) -> io::Result<bool> {
        let fl = self.fcntl(libc::F_OFD_GETLK, libc::F_WRLCK, byte)?;
        Ok(i32::from(fl.l_type) != libc::F_UNLCK)
    }

    /// Marks the file as being initialized by this process (creators).
    pub(crate) fn begin_init(&self) -> io::Result<()> {
        if self.try_lock(INIT_LOCK)? {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Ends [`begin_init`](Self::begin_init).
    pub(crate) fn end_init(&self) {
        self.unlock(INIT_LOCK);
    }

    /// Whether some process is still initializing the file. When in doubt
    /// (the probe failed), yes.
    pub(crate) fn init_in_progress(&self) -> bool {
        self.is_locked_by_other(INIT_LOCK).unwrap_or(true)
    }
}

impl AsFd for LiveFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` stays open for the life of `self` (in this process).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Drop for LiveFd {
    fn drop(&mut self) {
        if self.generation != FORK_GENERATION.load(Ordering::SeqCst) {
            return; // a forked child: the atfork handler closed it
        }
        if self
            .node
            .fd
            .compare_exchange(self.fd, -1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // SAFETY: we own `fd` and nobody else closes it.
            drop(unsafe { OwnedFd::from_raw_fd(self.fd) });
        }
    }
}

/// Records `fd` in the list the atfork child handler closes.
fn register(fd: RawFd) -> &'static FdNode {
    let mut node = FDS.load(Ordering::SeqCst);
    while !node.is_null() {
        // SAFETY: nodes are leaked boxes, never freed.
        let n = unsafe { &*node };
        if n.fd
            .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return n;
        }
        node = n.next.load(Ordering::SeqCst);
    }
    let n: &'static FdNode = Box::leak(Box::new(FdNode {
        fd: AtomicI32::new(fd),
        next: AtomicPtr::new(std::ptr::null_mut()),
    }));
    let mut head = FDS.load(Ordering::SeqCst);
    loop {
        n.next.store(head, Ordering::SeqCst);
        match FDS.compare_exchange(
            head,
            n as *const FdNode as *mut FdNode,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return n,
            Err(h) => head = h,
        }
    }
}

/// This attachment's token: its descriptor, holding the lock on the token's
/// byte, and the token's (index, generation).
pub(crate) struct Token {
    fd: LiveFd,
    index: u32,
    gen: u32,
    /// [`stamp`](Self::stamp), worked out once: every lock and unlock
    /// uses it.
    stamp: u32,
}

impl Token {
    /// Claims a free token of the file `fd` refers to, recording this
    /// process's pid (for messages only) in the token table.
    pub(crate) fn claim(fd: LiveFd, table: &[TokenCell], pid: u32) -> io::Result<Token> {
        let n = table.len().min(MAX_TOKENS);
        // Start at a pid-dependent place: attachers rarely collide.
        let start = (pid as usize).wrapping_mul(0x9e37_79b9) % n.max(1);
        for k in 0..n {
            let index = (start + k) % n;
            if fd.try_lock(TOKEN_LOCKS + index as i64)? {
                let cell = &table[index];
                let gen = cell.gen.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
                cell.pid.store(pid, Ordering::SeqCst);
                return Ok(Token {
                    fd,
                    index: index as u32,
                    gen,
                    stamp: Token::stamp_of(index as u32, gen),
                });
            }
        }
        Err(io::Error::other(format!(
            "all {MAX_TOKENS} process tokens are in use"
        )))
    }

    /// The descriptor (to probe other tokens and the init lock with).
    pub(crate) fn fd(&self) -> &LiveFd {
        &self.fd
    }

    /// The queue-lock owner stamp naming this token: index + 1 in the low
    /// 11 bits, the generation's low 20 bits above (never 0, < 2^31).
    #[inline]
    pub(crate) fn stamp(&self) -> u32 {
        self.stamp
    }

    fn stamp_of(index: u32, gen: u32) -> u32 {
        (gen & STAMP_GEN_MASK) << INDEX_BITS | (index + 1)
    }

    /// `(index + 1, generation)`, as recorded in an attachment slot.
    pub(crate) fn owner(&self) -> (u32, u32) {
        (self.index + 1, self.gen)
    }

    /// Whether a stamp could name a token at all (no syscall).
    pub(crate) fn stamp_is_valid(stamp: u32) -> bool {
        let index1 = stamp & ((1 << INDEX_BITS) - 1);
        index1 != 0 && index1 as usize <= MAX_TOKENS
    }

    /// Who holds the lock stamped `stamp`, as far as `table` and the
    /// kernel's locks tell.
    pub(crate) fn holder_of(&self, table: &[TokenCell], stamp: u32) -> Holder {
        if !Token::stamp_is_valid(stamp) {
            return Holder::Unknown;
        }
        if stamp == self.stamp() {
            return Holder::Alive; // another thread of this process
        }
        let index1 = stamp & ((1 << INDEX_BITS) - 1);
        let Some(cell) = table.get(index1 as usize - 1) else {
            return Holder::Unknown;
        };
        if cell.gen.load(Ordering::SeqCst) & STAMP_GEN_MASK != stamp >> INDEX_BITS {
            return Holder::Dead; // the index was claimed again since
        }
        match self
            .fd
            .is_locked_by_other(TOKEN_LOCKS + i64::from(index1) - 1)
        {
            Ok(false) => Holder::Dead,
            // Locked, or the probe failed: never take a lock from the living.
            _ => Holder::Alive,
        }
    }

    /// Whether the token `(index1, gen)` (as recorded in a slot) is held by
    /// a live process. Garbage names are dead.
    pub(crate) fn is_alive(&self, table: &[TokenCell], index1: u32, gen: u32) -> bool {
        if index1 == 0 || index1 as usize > MAX_TOKENS.min(table.len()) {
            return false;
        }
        if (index1, gen) == self.owner() {
            return true;
        }
        if table[index1 as usize - 1].gen.load(Ordering::SeqCst) != gen {
            return false;
        }
        self.fd
            .is_locked_by_other(TOKEN_LOCKS + i64::from(index1) - 1)
            .unwrap_or(true)
    }

    /// The pid recorded for the token a stamp names (0 if unknown). Only
    /// meaningful in the recorder's PID namespace.
    pub(crate) fn pid_of(table: &[TokenCell], stamp: u32) -> u32 {
        let index1 = (stamp & ((1 << INDEX_BITS) - 1)) as usize;
        index1
            .checked_sub(1)
            .and_then(|i| table.get(i))
            .map_or(0, |c| c.pid.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(tag: &str) -> (String, OwnedFd) {
        let path = format!("/procq-liveness-{tag}-{}", std::process::id());
        let fd = rustix::shm::open(
            path.as_str(),
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::RDWR,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        (path, fd)
    }

    fn table() -> Vec<TokenCell> {
        (0..MAX_TOKENS).map(|_| TokenCell::default()).collect()
    }

    #[test]
    fn tokens_are_exclusive_and_die_with_their_descriptor() {
        let (path, mapped) = segment("excl");
        let table = table();
        let a = Token::claim(LiveFd::open(&path, mapped.as_fd()).unwrap(), &table, 7).unwrap();
        let b = Token::claim(LiveFd::open(&path, mapped.as_fd()).unwrap(), &table, 7).unwrap();
        assert_ne!(a.index, b.index, "the kernel hands each index out once");
        assert!(b.is_alive(&table, a.owner().0, a.owner().1));
        assert_eq!(b.holder_of(&table, a.stamp()), Holder::Alive);
        assert_eq!(Token::pid_of(&table, a.stamp()), 7);
        let (a_owner, a_stamp) = (a.owner(), a.stamp());
        drop(a);
        assert!(!b.is_alive(&table, a_owner.0, a_owner.1));
        assert_eq!(b.holder_of(&table, a_stamp), Holder::Dead);
        // Claimed again: the old name stays dead, the new one lives.
        let c = Token::claim(LiveFd::open(&path, mapped.as_fd()).unwrap(), &table, 7).unwrap();
        if c.index == a_owner.0 - 1 {
            assert!(!b.is_alive(&table, a_owner.0, a_owner.1));
            assert_eq!(b.holder_of(&table, a_stamp), Holder::Dead);
        }
        assert!(b.is_alive(&table, c.owner().0, c.owner().1));
        assert_eq!(b.holder_of(&table, 0), Holder::Unknown);
        assert_eq!(b.holder_of(&table, b.stamp()), Holder::Alive);
        rustix::shm::unlink(path.as_str()).unwrap();
    }

    #[test]
    fn another_file_is_refused() {
        let (path, _mapped) = segment("same");
        let (other, other_fd) = segment("other");
        assert!(LiveFd::open(&path, other_fd.as_fd()).is_err());
        rustix::shm::unlink(path.as_str()).unwrap();
        rustix::shm::unlink(other.as_str()).unwrap();
    }
}
