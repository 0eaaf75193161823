//! Hostile and corrupted segments: every check that guards against them,
//! driven through the public API with the segment's bytes overwritten as
//! another process of the same user could.

use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::*;
use super::shared::{Shared, MAX_CAPACITY_LIMIT};
use crate::error::{Error, Result};
use crate::queue::Queue;

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

/// Offset of word `field` of the committed state (between calls, it is
/// always in `Header::committed`).
fn state_offset(q: &Queue<Vec<u8>>, field: usize) -> usize {
    let cur = q
        .raw
        .backend
        .shared()
        .header()
        .current
        .load(Ordering::Relaxed);
    assert_eq!(cur, CURRENT_COMMITTED);
    offset_of!(Header, committed) + field * 8
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
    std::fs::write(path(&name), vec![0xA5u8; DATA_OFFSET as usize + 4096]).unwrap();
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
    poke(&name, offset_of!(Header, version), &99u32.to_le_bytes());
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
    assert!(msg.contains("layout version 99"), "{msg}");
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
    let sh = q.raw.backend.shared();
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
    let sh = q.as_queue().raw.backend.shared();
    let h = sh.header();
    let slot = &h.slots[sh.slot];
    assert_eq!(slot.tasks.load(Ordering::Relaxed), 1);
    let seen = slot.applied.load(Ordering::Relaxed);
    // A committed entry (its process died before applying it) whose
    // generation matches what the slot saw in its low 32 bits only.
    let mut s = h.state().unwrap();
    s.journal_gen = seen + (1 << 32);
    s.journal_slot = sh.slot as u64 + 1;
    s.journal_op = OP_SET;
    s.journal_arg = 2;
    assert_eq!(h.current.load(Ordering::Relaxed), CURRENT_COMMITTED);
    h.committed.store(&s);
    forge_lock(&name, 1); // the dead process's lock, taken over next
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    assert_eq!(slot.tasks.load(Ordering::Relaxed), 2, "entry replayed");
    assert_eq!(slot.applied.load(Ordering::Relaxed), seen + (1 << 32));
}

#[test]
fn the_shutdown_bit_is_one_flag_and_never_a_journal_operation() {
    let (name, q, _cleanup) = queue("shutdown-bit");
    q.put(&vec![1]).unwrap();
    // The packed word of the committed state (which moves at each commit).
    let at = || state_offset(&q, 5);
    let read = || {
        let mut b = [0u8; 8];
        file(&name).read_exact_at(&mut b, at() as u64).unwrap();
        u64::from_le_bytes(b)
    };
    let packed = read();
    assert_eq!(packed & 0xff00, 0, "no journal entry, not shut down yet");
    // Set by another process: a shut-down queue like any other (puts
    // fail, the item left is handed out, then gets fail).
    poke(&name, at(), &(packed | 1 << 15).to_le_bytes());
    assert!(q.is_shutdown());
    assert!(matches!(q.put(&vec![2]), Err(Error::ShutDown)));
    assert_eq!(q.get_nowait().unwrap(), [1]);
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert!(q.stats().unwrap().shutdown);
    // A commit keeps the flag (and clearing it by hand is what a hostile
    // process could do to any field: it reopens the queue, nothing worse).
    q.shutdown(true).unwrap();
    assert_ne!(read() & 1 << 15, 0);
    // The journal-operation bits (8–13) beside it still reject an unknown
    // operation, with or without the flag.
    for op in [4u64, 0x7f] {
        poke(&name, at(), &((read() & !0x7f00) | op << 8).to_le_bytes());
        match q.get_nowait() {
            Err(Error::InvalidQueue { reason, .. }) => {
                assert!(reason.contains("journal"), "{reason}")
            }
            other => panic!("expected InvalidQueue, got {other:?}"),
        }
    }
}

/// A valid state from arbitrary words (as `StateCell` encodes them).
fn any_state() -> impl proptest::strategy::Strategy<Value = State> {
    use proptest::prelude::*;
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            12u32..40,
            0u64..4,
            0u64..=0xffff,
            0u64..=u64::from(u32::MAX),
            any::<u64>(),
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((head, tail, count, unfinished, empty_since), (log2, op, slot, arg, jgen), flags)| {
                State {
                    ring: crate::backend::shm::ring::Ring {
                        head,
                        tail,
                        cap: 1 << log2,
                        count,
                    },
                    unfinished,
                    journal_slot: slot,
                    journal_op: op,
                    journal_gen: jgen,
                    journal_arg: arg,
                    empty_since,
                    shutdown: flags.0,
                    shutdown_immediate: flags.1,
                }
            },
        )
}

/// A commit cut short after any number of its stores leaves `current`
/// naming the old state (before the first switch) or the new one (from
/// then on), never a mix; finishing it as recovery does puts the new
/// state back in the committed cell.
#[test]
fn a_commit_cut_after_any_store_leaves_the_old_or_the_new_state() {
    use proptest::prelude::*;
    let (_name, q, _cleanup) = queue("commit-cut");
    let sh = q.raw.backend.shared();
    let h = sh.header();
    let saved = h.state().unwrap();
    let scratch = prop_oneof![
        Just(CURRENT_SPARE),
        (0u32..4).prop_map(|i| CURRENT_SCRATCH + i)
    ];
    let cases = (
        any_state(),
        any_state(),
        any_state(),
        0..=COMMIT_STORES,
        scratch,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    let result = runner.run(&cases, |(old, new, garbage, stores, scratch)| {
        h.commit(&old, CURRENT_SPARE);
        // Whatever the scratch cell held before does not matter.
        h.commit_first(&garbage, scratch, STATE_WORDS);
        let done = h.commit_first(&new, scratch, stores);
        prop_assert_eq!(done, stores == COMMIT_STORES);
        let switched = stores > STATE_WORDS;
        let seen = h.state().unwrap();
        prop_assert_eq!(seen, if switched { new } else { old });
        prop_assert_eq!(h.in_scratch(), switched && stores < COMMIT_STORES);
        if h.in_scratch() {
            h.commit(&seen, CURRENT_COMMITTED);
            prop_assert!(!h.in_scratch());
            prop_assert_eq!(h.state().unwrap(), new);
        }
        Ok(())
    });
    h.commit(&saved, CURRENT_SPARE);
    result.unwrap();
}
