//! Named POSIX shared-memory segments: create, open, map, reserve, release.
//!
//! A thin, typed layer over `shm_open(3)`, `ftruncate(2)`, `fallocate(2)` and
//! `mmap(2)` (through `rustix` and `memmap2`). Everything that touches raw
//! mapped memory lives here or in `sync`; the rest of the crate sees
//! bounds-checked copies.
//!
//! # Who may use a segment
//!
//! A queue is shared by the processes of **one user**. `/dev/shm` is
//! writable by everybody, so a name there proves nothing: every path that
//! opens an existing segment ([`Segment::open`]) refuses, with
//! `Error::PermissionDenied`, anything that is not a regular file owned by
//! the effective uid with no group or other permission bits and a single
//! name. It opens with `O_NOFOLLOW` (a symbolic link is never followed) and
//! checks the *descriptor* with `fstat`, so the file checked is the file
//! mapped. Root gets no exception: a queue another user made is not root's.
//!
//! # Removing a name
//!
//! Names are recycled: after a queue is removed, a new one may be created
//! under the same name while processes still hold the old one. So a name is
//! only ever removed through [`Segment::unlink_if_same`], which removes it
//! only while it still refers to the mapped file (device and inode).
//!
//! # Segments are sparse
//!
//! Segments are sparse: the file is sized for the largest ring the queue may
//! ever grow to, but tmpfs only backs pages that were allocated. Pages are
//! reserved with `fallocate` before they are written, so a full `/dev/shm`
//! gives a clean `ENOSPC` instead of a `SIGBUS` on first touch (the lesson of
//! iceoryx #2287), and released with `FALLOC_FL_PUNCH_HOLE` when the ring
//! shrinks, which hands the memory back to the system.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::address::validate_name;
use crate::error::{Error, Result};

use super::sigbus;

/// Every procq segment's file name in `/dev/shm` starts with this.
pub(crate) const PREFIX: &str = "procq-";

/// The segment's file: `/dev/shm/procq-<name>` (what `shm_open` would use,
/// opened directly so that `O_NOFOLLOW` applies).
fn file_path(name: &str) -> String {
    format!("/dev/shm/{PREFIX}{name}")
}

/// Flags every open of a segment uses: never follow a link, never make it
/// a controlling terminal, never block (on a FIFO someone put there).
fn open_flags() -> OFlags {
    OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC
}

/// Why `st` may not be used as a queue by this process, if it may not.
fn refusal(st: &Stat) -> Option<String> {
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Some(match kind {
            FileType::Symlink => {
                "is a symbolic link (procq never follows links in /dev/shm)".to_owned()
            }
            other => format!("is not a regular file but a {other:?}"),
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if st.st_uid != euid {
        return Some(format!(
            "owned by uid {}, not by this process's effective uid {euid} \
             (a queue is shared by the processes of one user)",
            st.st_uid
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return Some(format!(
            "mode {mode:04o} lets other users read or write it (procq queues are 0600)"
        ));
    }
    if st.st_nlink > 1 {
        return Some(format!("has {} names (hard links)", st.st_nlink));
    }
    None
}

/// Whether the name refers to a segment this process may use, judged from
/// the directory entry alone (`lstat`: nothing is opened or followed).
/// `Ok(())` also when there is no such name: opening reports that.
pub(crate) fn check_entry(name: &str) -> Result<()> {
    validate_name(name)?;
    match rustix::fs::lstat(file_path(name).as_str()) {
        Ok(st) => refusal(&st).map_or(Ok(()), |why| Err(Error::denied(name, why))),
        Err(_) => Ok(()),
    }
}

/// A mapped shared-memory segment. Unmapped and closed on drop; the name is
/// only removed by [`Segment::unlink_if_same`].
pub(crate) struct Segment {
    /// Kept open so that pages can be reserved and released later, and to
    /// tell this file from another one under the same name.
    fd: OwnedFd,
    /// Registers the mapping with the `SIGBUS` handler. Declared before
    /// `map` so that it is dropped (unregistered) before the unmapping.
    guard: sigbus::Guard,
    /// The whole file, mapped read-write and shared.
    map: MmapRaw,
}

impl Segment {
    /// Creates a new segment of `len` bytes (sparse), owner-only, failing if
    /// the name is taken. The first `reserve` bytes are allocated up front.
    pub(crate) fn create(name: &str, len: u64, reserve: u64) -> Result<Segment> {
        validate_name(name)?;
        let path = file_path(name);
        // O_EXCL never follows a link either: a planted link is "taken".
        let fd = match rustix::fs::open(
            path.as_str(),
            open_flags() | OFlags::CREATE | OFlags::EXCL,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Err(Error::AlreadyExists(name.to_owned())),
            Err(e) => return Err(Error::io(format!("creating {path}"), e)),
        };
        let setup = || -> Result<Segment> {
            // 0600 whatever the umask (which may have removed our own bits).
            rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR).map_err(|e| Error::io("fchmod", e))?;
            rustix::fs::ftruncate(&fd, len).map_err(|e| Error::io("ftruncate", e))?;
            rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, reserve)
                .map_err(|e| Error::io(format!("reserving {reserve} bytes in /dev/shm"), e))?;
            Segment::map(fd.try_clone().map_err(|e| Error::io("dup", e))?, len)
        };
        setup().inspect_err(|_| {
            let _ = unlink_if_same_file(name, &fd);
        })
    }

    /// Opens and maps an existing segment. The caller validates the header
    /// before trusting anything in it.
    ///
    /// Refuses (`Error::PermissionDenied`) a segment this process may not
    /// use (see the module docs) before mapping it: the entry is checked
    /// with `lstat` before it is opened (so a foreign file or a FIFO is
    /// never even opened), then the opened descriptor with `fstat`.
    pub(crate) fn open(name: &str, max_len: u64) -> Result<Segment> {
        let (fd, st) = open_checked(name)?;
        let len = st.st_size as u64;
        if len > max_len {
            return Err(Error::invalid(
                name,
                format!("segment is {len} bytes, more than any queue"),
            ));
        }
        Segment::map(fd, len)
    }

    fn map(fd: OwnedFd, len: u64) -> Result<Segment> {
        let len =
            usize::try_from(len).map_err(|_| Error::io("mmap", io::ErrorKind::InvalidInput))?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&fd)
            .map_err(|e| Error::io("mmap", e))?;
        let guard = sigbus::register(map.as_mut_ptr(), map.len());
        Ok(Segment { fd, guard, map })
    }

    /// Removes the name, but only while it still refers to this segment's
    /// file: `Ok(true)` if removed, `Ok(false)` if the name is gone or now
    /// names another file (a queue created since under the same name).
    /// Processes that have the segment mapped keep working.
    ///
    /// The name is looked up with `O_PATH | O_NOFOLLOW` and compared by
    /// device and inode with the mapped descriptor. Between that comparison
    /// and the unlink only a process that removes the name *without* procq
    /// (procq removes names under the queue's lock, which the caller holds)
    /// could swap the file.
    pub(crate) fn unlink_if_same(&self, name: &str) -> Result<bool> {
        unlink_if_same_file(name, &self.fd)
    }

    /// Removes the name of a segment that is not a usable queue (foreign
    /// contents, another layout version) but that this process may use by
    /// the ownership rules: `Ok(false)` if the name went away meanwhile.
    pub(crate) fn remove_unusable(name: &str) -> Result<bool> {
        let (fd, _) = open_checked(name)?;
        unlink_if_same_file(name, &fd)
    }

    /// The segment's descriptor (to check that another descriptor refers
    /// to the same file).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Whether the mapping lost its file's pages (the file was truncated by
    /// another process, or a page could not be allocated): the `SIGBUS`
    /// this caused was turned into zero-filled private memory, so the
    /// segment's contents are gone for this process.
    #[inline]
    pub(crate) fn faulted(&self) -> bool {
        self.guard.faulted()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Backs `[offset, offset + len)` with memory, or fails with `ENOSPC`.
    pub(crate) fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        rustix::fs::fallocate(&self.fd, FallocateFlags::empty(), offset, len).map_err(Into::into)
    }

    /// Gives the memory of `[offset, offset + len)` back; it reads as zeros.
    pub(crate) fn release(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )
        .map_err(Into::into)
    }

    /// Bytes of memory actually backing the segment.
    pub(crate) fn resident_bytes(&self) -> u64 {
        rustix::fs::fstat(&self.fd)
            .map(|st| st.st_blocks as u64 * 512)
            .unwrap_or(0)
    }
}

/// Opens an existing segment's file after the checks of [`Segment::open`].
fn open_checked(name: &str) -> Result<(OwnedFd, Stat)> {
    check_entry(name)?;
    let path = file_path(name);
    let fd = match rustix::fs::open(path.as_str(), open_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(Error::NotFound(name.to_owned())),
        Err(Errno::LOOP) => {
            return Err(Error::denied(
                name,
                "is a symbolic link (procq never follows links in /dev/shm)",
            ))
        }
        Err(e @ (Errno::ACCESS | Errno::PERM)) => {
            return Err(Error::denied(name, format!("cannot be opened: {e}")))
        }
        Err(e) => return Err(Error::io(format!("opening {path}"), e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat", e))?;
    if let Some(why) = refusal(&st) {
        return Err(Error::denied(name, why));
    }
    Ok((fd, st))
}

/// See [`Segment::unlink_if_same`].
fn unlink_if_same_file(name: &str, fd: &OwnedFd) -> Result<bool> {
    validate_name(name)?;
    let path = file_path(name);
    let mine = rustix::fs::fstat(fd).map_err(|e| Error::io("fstat", e))?;
    let there = match rustix::fs::open(
        path.as_str(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(f) => rustix::fs::fstat(&f).map_err(|e| Error::io("fstat", e))?,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(Error::io(format!("looking up {path}"), e)),
    };
    if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino) {
        return Ok(false);
    }
    match rustix::fs::unlink(path.as_str()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::io(format!("removing {path}"), e)),
    }
}

/// A bounds-checked window of a mapped segment: the ring's data area.
pub(crate) struct DataArea<'a> {
    /// Start of the window inside the mapping.
    base: *mut u8,
    /// Length of the window.
    len: u64,
    /// Ties the window to the segment's lifetime.
    _seg: std::marker::PhantomData<&'a Segment>,
}

impl Segment {
    /// The window `[offset, offset + len)`, if it lies inside the mapping.
    pub(crate) fn area(&self, offset: u64, len: u64) -> Option<DataArea<'_>> {
        let end = offset.checked_add(len)?;
        if end > self.len() as u64 {
            return None;
        }
        // SAFETY: `offset` is within the mapping (checked just above).
        let base = unsafe { self.base().add(offset as usize) };
        Some(DataArea {
            base,
            len,
            _seg: std::marker::PhantomData,
        })
    }
}

impl DataArea<'_> {
    fn in_bounds(&self, off: u64, len: u64) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// The 4 bytes at `off` (little-endian), read atomically, so that they
    /// may be watched without the lock while their writer holds it;
    /// `None` if out of bounds or not 4-aligned.
    pub(crate) fn load_u32(&self, off: u64) -> Option<u32> {
        if !self.in_bounds(off, 4) || !off.is_multiple_of(4) {
            return None;
        }
        // SAFETY: bounds and alignment checked above (the window starts at
        // a page-aligned offset of the page-aligned mapping), and the
        // mapping outlives `self`. Any bit pattern is a valid `u32`, and an
        // atomic load races with nothing: a writer's plain store is seen
        // whole or not at all for an aligned word on the platforms procq
        // supports, and a hostile value is only a hint to the caller.
        let word = unsafe { AtomicU32::from_ptr(self.base.add(off as usize).cast()) };
        Some(u32::from_le(word.load(Ordering::Acquire)))
    }
}

impl DataArea<'_> {
    /// Runs `f` over the `len` bytes at `off`, writable; `None` if out of
    /// bounds. Only for a range the caller has reserved.
    pub(crate) fn with_mut<R>(
        &self,
        off: u64,
        len: u64,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        if !self.in_bounds(off, len) {
            return None;
        }
        // SAFETY: bounds checked above; the mapping is writable and outlives
        // `self`. The caller holds the reservation of this range (see
        // "Loans" in `layout`): no procq process reads or writes it until it
        // is published, so this is the one reference to these bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.base.add(off as usize), len as usize) };
        Some(f(bytes))
    }
}

impl super::ring::Memory for DataArea<'_> {
    fn size(&self) -> u64 {
        self.len
    }

    fn write(&self, off: u64, data: &[u8]) -> bool {
        if !self.in_bounds(off, data.len() as u64) {
            return false;
        }
        // SAFETY: bounds checked above; the mapping is writable and outlives
        // `self`. The caller holds the queue lock, or the reservation of
        // this range (see "Loans" in `layout`), so no other procq process
        // writes it meanwhile; `data` is ours and cannot overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off as usize), data.len())
        };
        true
    }

    fn read_with<R>(&self, off: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if !self.in_bounds(off, len) {
            return None;
        }
        // SAFETY: bounds checked above. Writers to this range hold the queue
        // lock, which the caller holds, or a reservation, which readers never
        // read (see "Loans" in `layout`), so the bytes are stable while `f`
        // runs (a hostile process could still scribble, but `u8` has no
        // invalid values and every length is re-checked by the decoder).
        let bytes =
            unsafe { std::slice::from_raw_parts(self.base.add(off as usize), len as usize) };
        Some(f(bytes))
    }

    fn copy_within(&self, src: u64, dst: u64, len: u64) -> bool {
        if !self.in_bounds(src, len) || !self.in_bounds(dst, len) {
            return false;
        }
        // SAFETY: both ranges are in bounds; `copy` allows overlap.
        unsafe {
            std::ptr::copy(
                self.base.add(src as usize),
                self.base.add(dst as usize),
                len as usize,
            )
        };
        true
    }
}

/// Names of every procq segment in `/dev/shm`.
pub(crate) fn list_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir("/dev/shm")? {
        let entry = entry?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
        {
            if validate_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Total size of the tmpfs behind `/dev/shm`, the most a queue can ever hold.
pub(crate) fn shm_fs_size() -> u64 {
    rustix::fs::statvfs("/dev/shm")
        .map(|s| s.f_blocks * s.f_frsize)
        .unwrap_or(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["a", "jobs", "q-1.2_3", &"x".repeat(200)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-x",
            ".hidden",
            "sp ace",
            "é",
            &"x".repeat(201),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_is_exclusive_and_owner_only() {
        let name = format!("test-excl-{}", std::process::id());
        let seg = Segment::create(&name, 1 << 20, 4096).unwrap();
        assert!(matches!(
            Segment::create(&name, 1 << 20, 0),
            Err(Error::AlreadyExists(_))
        ));
        let meta = fs::metadata(format!("/dev/shm/{PREFIX}{name}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(seg.resident_bytes() >= 4096);
        seg.release(0, 4096).unwrap();
        assert!(seg.unlink_if_same(&name).unwrap());
        assert!(!seg.unlink_if_same(&name).unwrap(), "already gone");
        assert!(matches!(
            Segment::open(&name, 1 << 30),
            Err(Error::NotFound(_))
        ));
    }
}
