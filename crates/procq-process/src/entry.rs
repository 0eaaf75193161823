//! How a child started by [`Process`](crate::Process) finds the function to
//! run — and why nothing else can be made to run.
//!
//! A re-executed child learns its target from the `PROCQ_PROCESS_CHILD`
//! environment variable and a payload descriptor: both come from outside
//! the program, and any binary that calls [`init`](crate::init) (the
//! `procq` command does) reads them. Jumping to an address derived from
//! them, as procq used to (a function's offset from an anchor, checked only
//! after the jump), lets whoever sets the environment run any code of the
//! program. So the child checks, **before** it calls anything:
//!
//! 1. **Not a privileged exec.** Under `AT_SECURE` (a setuid or setgid
//!    program, or one that gained capabilities) the environment belongs to
//!    a less privileged user: [`privileged_exec`] makes `init` refuse
//!    outright (such programs can still use the `fork` start method).
//! 2. **The payload is a sealed memfd.** [`check_payload`] requires a
//!    `memfd` (named `procq-process-args` where `/proc` shows it) carrying
//!    the seals `F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE`,
//!    which only a memfd created with `MFD_ALLOW_SEALING` can have
//!    ([`sealed_payload`] makes them): no plain file, pipe or unsealed
//!    memfd, and the bytes cannot change between check and use.
//! 3. **The target is a real entry point.** The parent does not send a
//!    function's offset but that of a [`Descriptor`]: one per
//!    instantiation `entry::<F, Args, R>`, a promoted `&'static` constant
//!    holding a 256-bit magic number, the signature function and the entry
//!    function. [`resolve`] adds the offset to a data anchor and accepts the
//!    address only if it is aligned, lies with the whole descriptor inside
//!    a *read-only* segment of the loaded image that contains the anchor
//!    (`dl_iterate_phdr`: a `PT_LOAD` without write permission, or the
//!    `PT_GNU_RELRO` range, where relocated constants live), and holds the
//!    magic number. Only then are its function pointers read and called:
//!    first the signature, compared with the parent's, then the entry.
//!
//! Why this is sound: read-only segments of the image contain only what the
//! compiler put there, and the magic number is put only into descriptors.
//! The checker never contains it — it compares two 64-bit mixes of the
//! candidate words against constants computed at compile time — so a copy
//! of the magic followed by arbitrary bytes cannot exist elsewhere in the
//! image (a chance match of both mixes is 2^-128). No registry is needed and
//! nothing runs before `main`.
//!
//! What remains: whoever can set the environment of a same-privilege
//! program can still make it run one of its genuine `Process` targets with
//! arguments of their choosing — which is no more than running that
//! program themselves. A target instantiated in a different loaded object
//! than procq (Rust dylibs) is refused with a clear error.

use std::sync::atomic::Ordering;

/// The magic number of every [`Descriptor`] (random bits).
const MAGIC: [u64; 4] = [
    0x8f3a_52c1_7d0e_94b6,
    0x2b71_e9d4_c65a_0f38,
    0xd04c_3b97_a1e6_5f2d,
    0x61f8_0a2e_b93c_d745,
];

/// A 64-bit mix of four words (multiply-xorshift), keyed.
const fn mix(words: &[u64; 4], key: u64) -> u64 {
    let mut h = key;
    let mut i = 0;
    while i < 4 {
        h = (h ^ words[i]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        i += 1;
    }
    h
}

/// What a genuine magic number mixes to; the checker compares with these
/// and never holds [`MAGIC`] itself.
const CHECK_A: u64 = mix(&MAGIC, 0x5851_f42d_4c95_7f2d);
const CHECK_B: u64 = mix(&MAGIC, 0x1405_7b7e_f767_814f);

/// A function a child may be told to run, with what identifies it.
/// Only ever created as a `'static` constant by [`Descriptor::new`].
#[repr(C)]
pub(crate) struct Descriptor<E: 'static> {
    magic: [u64; 4],
    /// Hash of the target's type signature.
    signature: fn() -> u64,
    /// The monomorphized entry function.
    entry: E,
}

impl<E: Copy + 'static> Descriptor<E> {
    /// A descriptor for `entry`; use it as a promoted constant
    /// (`const D: &'static Descriptor<E> = &Descriptor::new(..)`).
    pub(crate) const fn new(signature: fn() -> u64, entry: E) -> Descriptor<E> {
        Descriptor {
            magic: MAGIC,
            signature,
            entry,
        }
    }

    /// The target's type-signature hash.
    pub(crate) fn signature(&self) -> u64 {
        (self.signature)()
    }

    /// The entry function.
    pub(crate) fn entry(&self) -> E {
        self.entry
    }

    /// Distance from the data anchor, as sent to the child.
    pub(crate) fn offset(&'static self) -> i64 {
        offset_of_address(self as *const Self as usize)
    }
}

/// The anchor offsets are measured from: a static of this image.
static ANCHOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn anchor() -> usize {
    // Touch it so that it is kept (and not merged away).
    let _ = ANCHOR.load(Ordering::Relaxed);
    &ANCHOR as *const _ as usize
}

/// Distance of `addr` from the anchor (for tests that forge offsets).
pub(crate) fn offset_of_address(addr: usize) -> i64 {
    addr.wrapping_sub(anchor()) as i64
}

/// Finds the descriptor the parent designated by `offset`, after every
/// check described in the module docs; an error says which failed.
pub(crate) fn resolve<E: Copy + 'static>(offset: i64) -> Result<&'static Descriptor<E>, String> {
    let addr = anchor().wrapping_add(offset as usize);
    let size = std::mem::size_of::<Descriptor<E>>();
    if !addr.is_multiple_of(std::mem::align_of::<Descriptor<E>>()) {
        return Err(format!(
            "offset {offset} is not a procq entry point (misaligned)"
        ));
    }
    let Some(end) = addr.checked_add(size) else {
        return Err(format!("offset {offset} is not a procq entry point"));
    };
    if !read_only_in_image(anchor(), addr, end) {
        return Err(format!(
            "offset {offset} is not a procq entry point (outside this executable's read-only data)"
        ));
    }
    // SAFETY: `[addr, end)` lies inside a readable segment of this loaded
    // image (checked just above), `addr` is aligned for u64, and any bit
    // pattern is a valid `[u64; 4]`.
    let magic = unsafe { std::ptr::read(addr as *const [u64; 4]) };
    if mix(&magic, 0x5851_f42d_4c95_7f2d) != CHECK_A
        || mix(&magic, 0x1405_7b7e_f767_814f) != CHECK_B
    {
        return Err(format!("offset {offset} is not a procq entry point"));
    }
    // SAFETY: the magic number only ever appears in descriptors made by
    // `Descriptor::new` (see the module docs), all of the one type
    // `Descriptor<EntryFn>` that `process` uses, and this one lies in
    // read-only memory of this image: it is a genuine `'static` descriptor.
    Ok(unsafe { &*(addr as *const Descriptor<E>) })
}

/// Whether `[start, end)` lies inside one read-only segment of the loaded
/// object that contains `anchor`.
fn read_only_in_image(anchor: usize, start: usize, end: usize) -> bool {
    struct Query {
        anchor: usize,
        start: usize,
        end: usize,
        found: bool,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Query` passed below; `info` and its program
        // headers are valid for the duration of the callback.
        let (q, info) = unsafe { (&mut *(data as *mut Query), &*info) };
        let phdrs = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: as above: `dlpi_phnum` headers at `dlpi_phdr`.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let base = info.dlpi_addr as usize;
        let range = |p: &libc::Elf64_Phdr| {
            let s = base.wrapping_add(p.p_vaddr as usize);
            (s, s.saturating_add(p.p_memsz as usize))
        };
        let holds_anchor = phdrs.iter().any(|p| {
            let (s, e) = range(p);
            p.p_type == libc::PT_LOAD && s <= q.anchor && q.anchor < e
        });
        if !holds_anchor {
            return 0; // another object: go on
        }
        q.found = phdrs.iter().any(|p| {
            let (s, e) = range(p);
            let read_only = (p.p_type == libc::PT_LOAD
                && p.p_flags & libc::PF_R != 0
                && p.p_flags & libc::PF_W == 0)
                || p.p_type == libc::PT_GNU_RELRO;
            read_only && s <= q.start && q.end <= e
        });
        1 // the anchor's object: stop
    }
    let mut q = Query {
        anchor,
        start,
        end,
        found: false,
    };
    // SAFETY: `visit` matches the callback type and only reads what it is
    // given; `q` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut q as *mut Query as *mut libc::c_void) };
    q.found
}

/// Whether this process was started by a privileged exec (setuid, setgid,
/// file capabilities): its environment then belongs to someone else.
pub(crate) fn privileged_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The name the parent gives the payload memfd.
const PAYLOAD_NAME: &str = "procq-process-args";

/// Seals a payload memfd must carry.
fn required_seals() -> rustix::fs::SealFlags {
    use rustix::fs::SealFlags;
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// A memfd holding `payload`, sealed so that it can never change.
pub(crate) fn sealed_payload(payload: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{memfd_create, MemfdFlags};
    use std::io::Write;
    let fd = memfd_create(
        PAYLOAD_NAME,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    std::fs::File::from(fd.try_clone()?).write_all(payload)?;
    rustix::fs::fcntl_add_seals(&fd, required_seals())?;
    Ok(fd)
}

/// Checks that `fd` is a payload as [`sealed_payload`] makes it.
pub(crate) fn check_payload(fd: &std::os::fd::OwnedFd) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let not = |why: &str| {
        Err(format!(
            "the argument descriptor is not a sealed procq memfd: {why}"
        ))
    };
    let st = match rustix::fs::fstat(fd) {
        Ok(st) => st,
        Err(e) => return not(&e.to_string()),
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return not("not a regular file");
    }
    match rustix::fs::fcntl_get_seals(fd) {
        Ok(seals) if seals.contains(required_seals()) => {}
        Ok(seals) => return not(&format!("seals {seals:?}")),
        Err(_) => return not("no seals (a plain file)"),
    }
    // Where /proc shows it, the memfd must have our name.
    if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        let target = target.to_string_lossy();
        if !target.starts_with(&format!("/memfd:{PAYLOAD_NAME}")) {
            return not(&format!("it is {target}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seven() -> u64 {
        7
    }
    fn entry_a(x: u32) -> u32 {
        x + 1
    }

    struct Holder;
    impl Holder {
        const D: &'static Descriptor<fn(u32) -> u32> = &Descriptor::new(seven, entry_a);
    }

    #[test]
    fn a_real_descriptor_resolves_and_nothing_else_does() {
        let d = resolve::<fn(u32) -> u32>(Holder::D.offset()).unwrap();
        assert!(std::ptr::eq(d, Holder::D));
        assert_eq!((d.signature(), (d.entry())(1)), (7, 2));
        // A function, the middle of one, the anchor, the stack, the heap,
        // and neighbours of the real descriptor: all refused, none read as
        // a descriptor.
        let heap = Box::new(Descriptor::new(seven, entry_a as fn(u32) -> u32));
        let local = 0u64;
        for addr in [
            entry_a as *const () as usize,
            entry_a as *const () as usize + 8,
            anchor(),
            &local as *const u64 as usize,
            &*heap as *const _ as usize,
            Holder::D as *const _ as usize + 8,
            Holder::D as *const _ as usize - 8,
            0,
            usize::MAX - 7,
        ] {
            let r = resolve::<fn(u32) -> u32>(offset_of_address(addr));
            assert!(r.is_err(), "{addr:#x} resolved");
        }
    }

    #[test]
    fn payloads_must_be_sealed_memfds() {
        let fd = sealed_payload(b"hello").unwrap();
        check_payload(&fd).unwrap();
        let unsealed =
            rustix::fs::memfd_create(PAYLOAD_NAME, rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(check_payload(&unsealed).unwrap_err().contains("seals"));
        let file: std::os::fd::OwnedFd = std::fs::File::open("/proc/self/exe").unwrap().into();
        assert!(check_payload(&file).is_err());
        let (pipe, _) = rustix::pipe::pipe().unwrap();
        assert!(check_payload(&pipe).is_err());
    }

    #[test]
    fn the_checker_does_not_hold_the_magic() {
        assert_ne!(CHECK_A, CHECK_B);
        assert!(!MAGIC.contains(&CHECK_A) && !MAGIC.contains(&CHECK_B));
    }
}
