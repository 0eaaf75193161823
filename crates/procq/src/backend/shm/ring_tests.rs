//! The ring's unit and property tests (a model: `VecDeque`), kept out of
//! `ring.rs` so that the algorithm reads on its own.

use super::*;
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Heap memory for tests.
pub(crate) struct VecMemory(pub(crate) RefCell<Vec<u8>>);

impl Memory for VecMemory {
    fn size(&self) -> u64 {
        self.0.borrow().len() as u64
    }
    fn write(&self, off: u64, data: &[u8]) -> bool {
        let mut v = self.0.borrow_mut();
        match v.get_mut(off as usize..off as usize + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
    fn read_with<R>(&self, off: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let v = self.0.borrow();
        v.get(off as usize..(off + len) as usize).map(f)
    }
    fn copy_within(&self, src: u64, dst: u64, len: u64) -> bool {
        let mut v = self.0.borrow_mut();
        if (src + len) as usize > v.len() || (dst + len) as usize > v.len() {
            return false;
        }
        v.copy_within(src as usize..(src + len) as usize, dst as usize);
        true
    }
}

fn push(ring: &mut Ring, mem: &VecMemory, data: &[u8]) -> bool {
    loop {
        match ring.plan_push(data.len() as u64) {
            Some(p) => {
                let off = ring.write_headers(mem, &p, None).unwrap();
                assert!(mem.write(off, data));
                ring.commit_push(&p);
                return true;
            }
            None if ring.cap < mem.size() => ring.grow(mem).unwrap(),
            None => return false,
        }
    }
}

fn pop(ring: &mut Ring, mem: &VecMemory) -> Option<Vec<u8>> {
    let f = ring.front(mem).unwrap()?;
    let v = mem.read_with(f.off, f.len, |b| b.to_vec()).unwrap();
    ring.pop(&f);
    Some(v)
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    Shrink,
    /// Takes the front item (as a consumer reading it without the lock).
    Take,
    /// Gives the front item back if it is taken.
    Untake,
    /// Takes the `n`-th item behind the head (walking past freed
    /// records), reads it and counts it out, marking it freed, as a
    /// reader behind a taken head record does.
    TakeBehind(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..300).prop_map(Op::Push),
        1 => (0usize..3000).prop_map(Op::Push),
        4 => Just(Op::Pop),
        1 => Just(Op::Shrink),
        2 => Just(Op::Take),
        1 => Just(Op::Untake),
        2 => (1usize..4).prop_map(Op::TakeBehind),
    ]
}

proptest! {
    #[test]
    fn behaves_like_a_vecdeque(ops in proptest::collection::vec(op(), 1..400), max_shift in 8u32..14) {
        let mem = VecMemory(RefCell::new(vec![0; 1 << max_shift]));
        let mut ring = Ring::new(64);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut stamp = 0u8;
        for op in ops {
            match op {
                Op::Push(n) => {
                    stamp = stamp.wrapping_add(1);
                    let data: Vec<u8> = (0..n).map(|i| stamp.wrapping_add(i as u8)).collect();
                    if push(&mut ring, &mem, &data) {
                        model.push_back(data);
                    } else {
                        // Refused only once the ring cannot grow any more.
                        prop_assert_eq!(ring.cap, mem.size());
                    }
                }
                Op::Pop => prop_assert_eq!(pop(&mut ring, &mem), model.pop_front()),
                Op::Shrink => if ring.count == 0 { ring.shrink_empty(64) },
                // A taken item is still the front, still counted, its
                // bytes unchanged (growth moves it whole); untaken, it
                // is a plain item again.
                Op::Take => if let Some(f) = ring.front(&mem).unwrap() {
                    ring.take(&mem, f.pos, 3).unwrap();
                    let t = ring.front(&mem).unwrap().unwrap();
                    prop_assert_eq!((t.taken, t.reserved, t.pos, t.len), (Some(3), None, f.pos, f.len));
                    prop_assert_eq!(ring.loaned_at(&mem, f.pos), Some(3));
                    prop_assert!(ring.taken_by(&mem, f.pos, 3));
                },
                Op::Untake => if let Some(f) = ring.front(&mem).unwrap() {
                    ring.untake(&mem, f.pos, 4);
                    prop_assert_eq!(ring.front(&mem).unwrap().unwrap().taken, f.taken, "another tag");
                    ring.untake(&mem, f.pos, 3);
                    let u = ring.front(&mem).unwrap().unwrap();
                    prop_assert_eq!((u.taken, u.pos, u.len), (None, f.pos, f.len));
                    prop_assert_eq!(ring.loaned_at(&mem, f.pos), None);
                },
                Op::TakeBehind(n) => if n < model.len() {
                    let mut pos = ring.front(&mem).unwrap().unwrap().new_head;
                    let mut seen = 0;
                    let rec = loop {
                        match ring.record_at(&mem, pos).unwrap() {
                            Err(next) => pos = next,
                            Ok(r) if seen + 1 == n => break r,
                            Ok(r) => {
                                seen += 1;
                                pos = r.new_head;
                            }
                        }
                    };
                    ring.take(&mem, rec.pos, 5).unwrap();
                    let bytes = mem.read_with(rec.off, rec.len, |b| b.to_vec()).unwrap();
                    prop_assert_eq!(Some(bytes), model.remove(n));
                    ring.pop_behind();
                    ring.mark_done(&mem, rec.pos, 5);
                    prop_assert_eq!(ring.loaned_at(&mem, rec.pos), None);
                },
            }
            if let Some(f) = ring.front(&mem).unwrap() {
                let bytes = mem.read_with(f.off, f.len, |b| b.to_vec()).unwrap();
                prop_assert_eq!(Some(&bytes), model.front());
            }
            ring.validate(mem.size()).unwrap();
            prop_assert_eq!(ring.count as usize, model.len());
        }
        while let Some(v) = model.pop_front() {
            prop_assert_eq!(pop(&mut ring, &mem), Some(v));
        }
        prop_assert_eq!(pop(&mut ring, &mem), None);
    }

    #[test]
    fn extreme_positions_never_panic(head in prop_oneof![any::<u64>(), (0u64..1 << 20).prop_map(|d| u64::MAX - d)], used in 0u64..600, count in 0u64..40, cap_log in 4u32..10) {
        let cap = 1u64 << cap_log;
        let mem = VecMemory(RefCell::new(vec![0x5a; 1 << 12]));
        let mut ring = Ring { head: head & !15, tail: (head & !15).saturating_add(used & !15), cap, count };
        let valid = ring.validate(mem.size()).is_ok();
        let _ = ring.front(&mem);
        let _ = ring.plan_push(used);
        if ring.grow(&mem).is_ok() && valid {
            ring.validate(mem.size()).unwrap();
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 256), head in 0u64..512, used in 0u64..300, count in 0u64..20) {
        let mem = VecMemory(RefCell::new(bytes));
        let ring = Ring { head: head & !15, tail: (head & !15) + (used & !15), cap: 256, count };
        if ring.validate(256).is_ok() {
            let _ = ring.front(&mem);
            let _ = ring.record_at(&mem, ring.head);
            let mut r = ring;
            r.skip_freed(&mem);
        }
    }
}

/// A ring whose positions sit just below `u64::MAX - gap`, with one
/// record in it (what a hostile process can write into the state).
fn ring_near_the_limit(gap: u64, cap: u64) -> Ring {
    let head = (u64::MAX - gap) & !(cap - 1);
    Ring {
        head,
        tail: head + 32,
        cap,
        count: 1,
    }
}

#[test]
fn positions_near_the_integer_limit_are_refused_not_looped_on() {
    let mem = VecMemory(RefCell::new(vec![0; 1 << 16]));
    let max = mem.size();
    for gap in [0, 15, 16, 4095, 4096, max, 2 * max, 4 * max - 1] {
        let mut ring = ring_near_the_limit(gap, 4096);
        // Before: this ring passed `validate`, and `grow` overflowed in
        // `(pos / cap + 1) * cap` (a panic with overflow checks, ~2^52
        // rounds under the lock without).
        assert!(ring.validate(max).is_err(), "gap {gap}");
        // Even unvalidated, nothing overflows or loops.
        let _ = ring.grow(&mem);
        let _ = ring.plan_push(100);
        let _ = ring.front(&mem);
    }
    // Far enough from the limit: valid, and it works.
    let mut ring = ring_near_the_limit(4 * max + 4096, 4096);
    ring.validate(max).unwrap();
    let mut data = [0u8; RECORD_HEADER as usize];
    data[0..4].copy_from_slice(&KIND_DATA.to_le_bytes());
    data[8..16].copy_from_slice(&16u64.to_le_bytes());
    assert!(mem.write(ring.head % 4096, &data));
    assert!(push(&mut ring, &mem, &[9; 8000]));
    ring.validate(max).unwrap();
    assert_eq!(ring.cap, 8192);
    assert_eq!(pop(&mut ring, &mem), Some(vec![0; 16]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![9; 8000]));
}

#[test]
fn grow_refuses_a_span_wider_than_the_capacity() {
    let mem = VecMemory(RefCell::new(vec![0; 1 << 12]));
    let mut ring = Ring {
        head: 0,
        tail: 2048,
        cap: 256,
        count: 1,
    };
    assert!(ring.grow(&mem).is_err());
}

#[test]
fn empty_ring_accepts_a_record_of_full_capacity() {
    let mem = VecMemory(RefCell::new(vec![0; 256]));
    let mut ring = Ring::new(256);
    assert!(push(&mut ring, &mem, &[1; 10]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![1; 10]));
    // head is now at 32: a 240-byte payload (256-byte record) only fits
    // by realigning the empty ring.
    assert!(push(&mut ring, &mem, &[7; 240]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![7; 240]));
    assert!(!push(&mut ring, &mem, &[7; 241]));
}

#[test]
fn a_reserved_record_is_seen_but_not_read_until_published() {
    let mem = VecMemory(RefCell::new(vec![0; 1024]));
    let mut ring = Ring::new(256);
    let p = ring.plan_push(20).unwrap();
    let off = ring.write_headers(&mem, &p, Some(7)).unwrap();
    ring.commit_push(&p);
    assert!(push(&mut ring, &mem, b"next"));
    let f = ring.front(&mem).unwrap().unwrap();
    assert_eq!((f.reserved, f.pos, f.len), (Some(7), p.pos(), 20));
    assert_eq!(ring.reserved_at(&mem, p.pos()), Some(7));
    assert_eq!(ring.reserved_at(&mem, p.pos() + 16), None);
    assert!(ring.publish(&mem, p.pos(), 8).is_err(), "another tag");
    assert!(mem.write(off, &[5; 20]));
    ring.publish(&mem, p.pos(), 7).unwrap();
    assert_eq!(ring.reserved_at(&mem, p.pos()), None);
    assert!(ring.publish(&mem, p.pos(), 7).is_err(), "published twice");
    assert_eq!(pop(&mut ring, &mem), Some(vec![5; 20]));
    assert_eq!(pop(&mut ring, &mem), Some(b"next".to_vec()));
    assert_eq!(ring.reserved_at(&mem, p.pos()), None, "behind the head");
}

#[test]
fn growth_preserves_wrapped_records() {
    let mem = VecMemory(RefCell::new(vec![0; 1024]));
    let mut ring = Ring::new(64);
    assert!(push(&mut ring, &mem, &[1; 20]));
    assert!(push(&mut ring, &mem, &[2; 8]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![1; 20]));
    assert!(push(&mut ring, &mem, &[3; 16])); // wraps with a pad
    assert!(push(&mut ring, &mem, &[4; 100])); // forces growth
    assert_eq!(ring.cap, 256);
    assert_eq!(pop(&mut ring, &mem), Some(vec![2; 8]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![3; 16]));
    assert_eq!(pop(&mut ring, &mem), Some(vec![4; 100]));
    assert_eq!(pop(&mut ring, &mem), None);
}

#[test]
fn corrupt_lengths_are_reported() {
    let mem = VecMemory(RefCell::new(vec![0; 256]));
    let mut ring = Ring::new(256);
    assert!(push(&mut ring, &mem, &[1; 10]));
    mem.write(8, &u64::MAX.to_le_bytes());
    assert!(ring.front(&mem).is_err());
    mem.write(0, b"JUNK");
    assert!(ring.front(&mem).is_err());
    assert!(Ring {
        head: 0,
        tail: 512,
        cap: 256,
        count: 1
    }
    .validate(256)
    .is_err());
    assert!(Ring {
        head: 0,
        tail: 32,
        cap: 100,
        count: 1
    }
    .validate(256)
    .is_err());
    assert!(Ring {
        head: 0,
        tail: 32,
        cap: 256,
        count: 0
    }
    .validate(256)
    .is_err());
}
