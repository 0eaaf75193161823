//! Entry points for the fuzz targets in `fuzz/` and for the tests that
//! replay their corpus (feature `testing`). Not part of the API; may change
//! at any time.
//!
//! The fuzzer plays a hostile process: it takes a real queue with a few
//! records in it and overwrites arbitrary bytes of its header, committed
//! state and ring, then drives every operation. Whatever it writes, procq
//! must answer with values or errors — never a panic, an out-of-bounds
//! access or a hang.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::shm::layout::{Header, DATA_OFFSET, STATE_WORDS};
use crate::{Builder, RawQueue};

/// Bytes of the header the fuzzer may overwrite: everything before the lock
/// (identity and limits) and after it (state, event counts, slots). The lock
/// itself is excluded: a hostile process can always hold a lock forever.
///
/// The magic number is excluded too: zeroing it makes `open` wait (up to 2 s)
/// for a creator that is still initializing, which only slows the fuzzer;
/// unit tests cover foreign magic numbers.
fn patchable(offset: usize, len: usize) -> bool {
    let lock = std::mem::offset_of!(Header, lock);
    let lock_end = std::mem::offset_of!(Header, current);
    (offset >= 8 && offset + len <= lock) || offset >= lock_end
}

/// Values near the integer limits, where position and count arithmetic
/// overflows if anything is unchecked.
const NEAR_LIMITS: [u64; 8] = [
    u64::MAX,
    1 << 63,
    i64::MAX as u64,
    1 << 48,
    1 << 40,
    1 << 32,
    u32::MAX as u64,
    0,
];

/// A value near one of [`NEAR_LIMITS`]: `bytes[0]` picks the base (bit 7:
/// add instead of subtract, bit 6: keep the result 16-byte aligned), the
/// next up to four bytes are the distance (LE).
fn near_limit(bytes: &[u8]) -> u64 {
    let pick = bytes.first().copied().unwrap_or(0);
    let mut d = [0u8; 8];
    let rest = bytes.get(1..).unwrap_or_default();
    let n = rest.len().min(4);
    d[..n].copy_from_slice(&rest[..n]);
    let delta = u64::from_le_bytes(d);
    let base = NEAR_LIMITS[usize::from(pick) % NEAR_LIMITS.len()];
    let v = if pick & 0x80 != 0 {
        base.wrapping_add(delta)
    } else {
        base.wrapping_sub(delta)
    };
    if pick & 0x40 != 0 {
        v & !15
    } else {
        v
    }
}

/// Byte offset of word `word` (0–6) of state cell `cell`: 0 the committed
/// cell, 1 the spare scratch cell (see `layout::Header::commit`).
fn state_word(cell: usize, word: usize) -> usize {
    let base = if cell == 0 {
        std::mem::offset_of!(Header, committed)
    } else {
        std::mem::offset_of!(Header, spare)
    };
    base + word * 8
}

/// Overwrites word `word` (0 head, 1 tail, 2 count, 3 unfinished, 4
/// empty-since, 5 packed capacity/journal, 6 journal generation) of the
/// committed state of queue `name` (where it lies between calls) with
/// `value`, as a hostile process of the same user could. For tests.
pub fn poke_state(name: &str, word: usize, value: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/procq-{name}"))?;
    file.write_all_at(
        &value.to_le_bytes(),
        state_word(0, word % STATE_WORDS) as u64,
    )
}

/// Applies patches from `data` to a fresh queue, then runs every operation.
///
/// `data` is a list of patches: `[region][offset: u16 LE][len: u8][bytes]`.
/// By `region % 4`: 0 = header bytes (offset scaled ×8 to reach the
/// state), 1 and 3 = ring bytes, 2 = one state word set to a value near an
/// integer limit (see [`near_limit`]), independent of where the layout puts
/// it: by `offset / 8 % 3`, word `offset % 8 % 7` of the committed cell or
/// of the spare scratch cell, or (truncated to 32 bits) `current`, which
/// names the cell that holds the committed state.
///
/// ```
/// procq::__fuzzing::segment(&[1, 0, 0, 4, b'J', b'U', b'N', b'K']);
/// ```
pub fn segment(mut data: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(q) = Builder::new()
        .name(&name)
        .capacity_bytes(4096)
        .max_bytes(1 << 16)
        .build_raw()
    else {
        return;
    };
    for item in [&b"first"[..], &[7u8; 300], &[], &[1u8; 3000], &[9u8; 2000]] {
        let _ = q.put(item);
    }
    let _ = q.get_nowait(); // move the head off zero
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/procq-{name}"))
    else {
        let _ = crate::remove(&name);
        return;
    };
    while let [region, o0, o1, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (bytes, tail) = rest.split_at(len);
        let offset = usize::from(u16::from_le_bytes([*o0, *o1]));
        data = tail;
        let at = match region % 4 {
            0 => offset * 8 % DATA_OFFSET as usize,
            2 => {
                let v = near_limit(bytes);
                let _ = match offset / 8 % 3 {
                    2 => file.write_all_at(
                        &(v as u32).to_le_bytes(),
                        std::mem::offset_of!(Header, current) as u64,
                    ),
                    cell => file.write_all_at(
                        &v.to_le_bytes(),
                        state_word(cell, offset % 8 % STATE_WORDS) as u64,
                    ),
                };
                continue;
            }
            _ => DATA_OFFSET as usize + offset,
        };
        if patchable(at, len) {
            let _ = file.write_all_at(bytes, at as u64);
        }
    }
    exercise(&q, &name);
    drop(q);
    let _ = crate::remove(&name);
}

fn exercise(q: &RawQueue, name: &str) {
    let _ = crate::stats(name); // re-validates the header from scratch
    let _ = RawQueue::open(name);
    for _ in 0..3 {
        let _ = q.get_nowait();
    }
    let _ = q.put(b"after");
    let _ = q.put(&[5u8; 5000]);
    let _ = q.get_many_nowait(8);
    let _ = q.qsize();
    let _ = q.task_done();
    // Last: a queue shut down stays so.
    let _ = q.is_shutdown();
    let _ = q.shutdown(false);
    let _ = q.put(b"refused");
    let _ = q.get_nowait();
    let _ = q.shutdown(true);
    let _ = q.get_nowait();
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_replays_without_panics() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/segment");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("fuzz corpus is checked in") {
            super::segment(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "empty corpus");
    }

    #[test]
    fn near_limit_values_cover_both_sides_of_each_base() {
        assert_eq!(super::near_limit(&[]), u64::MAX);
        assert_eq!(super::near_limit(&[0]), u64::MAX);
        assert_eq!(super::near_limit(&[0, 15]), u64::MAX - 15);
        assert_eq!(super::near_limit(&[0x40, 0, 1]), (u64::MAX - 256) & !15);
        assert_eq!(super::near_limit(&[0x81, 1]), (1 << 63) + 1);
        assert_eq!(super::near_limit(&[7, 1]), u64::MAX); // 0 - 1 wraps
    }

    #[test]
    fn patching_state_words_with_extremes_is_survived() {
        use crate::backend::shm::layout::{Header, STATE_WORDS};
        for word in 0..STATE_WORDS {
            for value in [0u64, 1, 15, 16, u64::MAX, u64::MAX - 15, 1 << 40] {
                let mut input = vec![0u8];
                // The committed cell and the spare scratch cell.
                for base in [
                    std::mem::offset_of!(Header, committed),
                    std::mem::offset_of!(Header, spare),
                ] {
                    input.extend_from_slice(&(((base / 8) + word) as u16).to_le_bytes());
                    input.push(8);
                    input.extend_from_slice(&value.to_le_bytes());
                    input.push(0);
                }
                input.pop();
                super::segment(&input);
            }
        }
        // `current` naming each kind of cell, and none.
        for value in [1u64, 2, 3, 1025, 1026, 1 << 31, u32::MAX as u64] {
            // Region 2, `current` (offset / 8 % 3 == 2), value = 0 + value.
            let mut input = vec![2u8, 16, 0, 5, 7 | 0x80];
            input.extend_from_slice(&(value as u32).to_le_bytes());
            super::segment(&input);
        }
    }
}

/// Where [`put_and_stop`] stops a large put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStop {
    /// Right after its record was reserved (and the reservation committed).
    Reserved,
    /// Half-way through copying the item into the reserved record.
    HalfCopied,
    /// After the copy, before the item is published.
    Copied,
    /// After the record's header became an item's, before the process's
    /// loan entry was cleared.
    HeaderPublished,
}

/// Puts `bytes` (a large item: at least 16 KiB) to the shared-memory queue
/// `q` the way a large put goes — reserve, copy outside the lock, publish —
/// but stops at `stop`, as a process killed there would. The caller then
/// dies without cleaning up (`std::process::abort()`, or waits for a
/// SIGKILL). For the crash tests.
pub fn put_and_stop(q: &RawQueue, bytes: &[u8], stop: PutStop) -> crate::Result<()> {
    use crate::backend::shm::LoanStop;
    let stop = match stop {
        PutStop::Reserved => LoanStop::Reserved,
        PutStop::HalfCopied => LoanStop::HalfCopied,
        PutStop::Copied => LoanStop::Copied,
        PutStop::HeaderPublished => LoanStop::HeaderPublished,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    let half = stop == LoanStop::HalfCopied;
    let fill = |mem: &crate::backend::shm::DataArea<'_>, off: u64| {
        use crate::backend::shm::Memory;
        mem.write(
            off,
            if half {
                &bytes[..bytes.len() / 2]
            } else {
                bytes
            },
        )
    };
    q.backend.shared().push_loaned(
        bytes.len() as u64,
        crate::block::Block::Forever,
        &never,
        stop,
        fill,
    )
}

/// Stores a commit of the committed state makes (see
/// `layout::Header::commit`): the scratch cell's words, `current`, the
/// committed cell's words, `current` again.
pub const COMMIT_STORES: usize = crate::backend::shm::layout::COMMIT_STORES;

/// From now on, the first commit this process makes stops after `stores`
/// of its [`COMMIT_STORES`] stores, and the process SIGKILLs itself there,
/// holding the queue lock: a kill between (or inside) the steps of a
/// commit, exactly; `COMMIT_STORES` kills it right after the whole commit,
/// before the journal entry it carries is applied. 0 turns it off. For the
/// crash tests.
pub fn kill_mid_commit(stores: usize) {
    crate::backend::shm::layout::COMMIT_KILL_AFTER
        .store(stores, std::sync::atomic::Ordering::Relaxed);
}

/// From now on, a blocking put of a large item in this process lets
/// consumers free space for up to `patience` (instead of 20 ms) before it
/// grows a ring of 8 MiB or more that holds items ("Holding growth back"
/// in ARCHITECTURE.md), so that a test sees the hold whatever the
/// scheduling. For the tests.
pub fn hold_growth_for(patience: std::time::Duration) {
    let ms = u64::try_from(patience.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    crate::backend::shm::GROWTH_PATIENCE_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Where [`kill_at_keep_step`] kills a process: between the stores with
/// which a ring keeps its pages when it empties and gives them back when
/// idle (see "Keeping pages" in `backend/shm/capacity.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepStep {
    /// Growth: the new half reserved with `fallocate`, not yet claimed.
    Reserved,
    /// A busy ring that emptied: its pages claimed as kept, the smaller
    /// ring not yet committed.
    Claimed,
    /// Release of an idle ring: the shrink to the initial capacity
    /// committed, the pages still claimed as kept.
    Shrunk,
    /// Release: the claim dropped, the pages not yet punched.
    Unclaimed,
}

/// From now on, this process SIGKILLs itself, holding the queue lock, when
/// it reaches `step` (`None` turns it off). For the crash tests.
pub fn kill_at_keep_step(step: Option<KeepStep>) {
    use crate::backend::shm::KeepStep as K;
    let n = step.map_or(0, |s| {
        (match s {
            KeepStep::Reserved => K::Reserved,
            KeepStep::Claimed => K::Claimed,
            KeepStep::Shrunk => K::Shrunk,
            KeepStep::Unclaimed => K::Unclaimed,
        }) as usize
    });
    crate::backend::shm::KEEP_KILL_AT.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Where [`get_and_stop`] stops a get of a large item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStop {
    /// Right after the item was taken (marked as this process's to read
    /// without the lock), before it is read.
    Taken,
    /// After it was read, before it is popped.
    Read,
    /// After the pop committed, before the process's loan entry was
    /// cleared.
    Popped,
}

/// Gets one item from the shared-memory queue `q` the way a get of a large
/// item goes — take it, read it outside the lock, pop it — but stops at
/// `stop`, as a process killed there would; returns the length of the
/// item it read (0 if it stopped before reading). The caller then dies
/// without cleaning up. For the crash tests.
pub fn get_and_stop(q: &RawQueue, stop: GetStop) -> crate::Result<usize> {
    use crate::backend::shm::TakeStop;
    let stop = match stop {
        GetStop::Taken => TakeStop::Taken,
        GetStop::Read => TakeStop::Read,
        GetStop::Popped => TakeStop::Popped,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut len = 0;
    q.backend
        .shared()
        .pop_taking(1, crate::block::Block::Forever, &never, stop, |bytes| {
            len = bytes.len();
            crate::backend::shm::Verdict::Take
        })?;
    Ok(len)
}

/// How many reservations of large items readers of queue `name` removed
/// because their producer died (or gave up) before publishing them. For
/// the crash tests' reports.
pub fn orphaned_puts(name: &str) -> std::io::Result<u64> {
    let file = std::fs::File::open(format!("/dev/shm/procq-{name}"))?;
    let at = std::mem::offset_of!(Header, counters)
        + std::mem::offset_of!(crate::backend::shm::layout::Counters, orphans);
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, at as u64)?;
    Ok(u64::from_le_bytes(word))
}
