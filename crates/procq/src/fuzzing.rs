//! Entry points for the fuzz targets in `fuzz/` and for the tests that
//! replay their corpus. Not part of the API; may change at any time.
//!
//! The fuzzer plays a hostile process: it takes a real queue with a few
//! records in it and overwrites arbitrary bytes of its header, committed
//! state and ring, then drives every operation. Whatever it writes, procq
//! must answer with values or errors — never a panic, an out-of-bounds
//! access or a hang.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{Header, DATA_OFFSET};
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

/// Applies patches from `data` to a fresh queue, then runs every operation.
///
/// `data` is a list of patches: `[region][offset: u16 LE][len: u8][bytes]`,
/// region 0 = header (offset scaled ×8 to reach the state), 1 = ring.
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
        let at = match region % 2 {
            0 => offset * 8 % DATA_OFFSET as usize,
            _ => DATA_OFFSET as usize + offset,
        };
        if patchable(at, len) {
            let _ = file.write_all_at(bytes, at as u64);
        }
        data = tail;
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
    let _ = q.get_many(8, Some(std::time::Duration::ZERO));
    let _ = q.qsize();
    let _ = q.task_done();
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
    fn patching_state_words_with_extremes_is_survived() {
        for word in 0..8u16 {
            for value in [0u64, 1, 15, 16, u64::MAX, u64::MAX - 15, 1 << 40] {
                let mut input = vec![0u8];
                // State cells start after the lock; cover both buffers.
                let base = (std::mem::offset_of!(crate::layout::Header, states) / 8) as u16;
                for cell in 0..2u16 {
                    let cell_words = (std::mem::size_of::<crate::layout::StateCell>() / 8) as u16;
                    input.extend_from_slice(&(base + cell * cell_words + word).to_le_bytes());
                    input.push(8);
                    input.extend_from_slice(&value.to_le_bytes());
                    input.push(0);
                }
                input.pop();
                super::segment(&input);
            }
        }
    }
}
