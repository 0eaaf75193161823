//! A ring of variable-length records whose capacity doubles and halves.
//!
//! # Algorithm
//!
//! Positions are 64-bit byte counters that only ever grow; the byte at
//! position `p` lives at offset `p mod cap` of the data area, where `cap` is
//! a power of two. A record is a 16-byte header (kind, flags, payload
//! length) followed by the payload, padded to 16 bytes. A record never
//! straddles the end of the ring: when it would, a `PAD` record fills the
//! rest and the record starts at offset 0. Records are therefore contiguous,
//! so producers copy into and consumers decode straight out of shared
//! memory.
//!
//! A producer of a large item may *reserve* its record instead (a `RESV`
//! record: the header names the reserving process's slot), copy the payload
//! without holding the queue lock, and then *publish* it by turning the
//! header into an `ITEM` one (see `locked` for the protocol and its crash
//! recovery). A reserved record is part of the ring like any other; readers
//! see it at the front as [`Front::reserved`] and do not read its payload.
//!
//! A consumer of a large item may likewise *take* the record at the front
//! (a `TAKE` record: the header names the reading process's slot), copy
//! the payload out without the lock, and then pop it. A taken record stays
//! at the head, so no producer can overwrite it while it is read; readers
//! see it as [`Front::taken`], and an untaken record is an item again
//! ([`Ring::untake`]). A reader may also take an item behind a taken one
//! ([`Ring::record_at`] walks there); once read, that record is counted
//! out ([`Ring::pop_behind`]) and marked `DONE` ([`Ring::mark_done`]): free
//! space that the head skips when it gets there.
//!
//! Growth doubles `cap` without renumbering positions. Under the new modulus
//! `2·cap` a live byte stays put if bit `cap` of its position is clear and
//! moves up by `cap` otherwise; at most `cap` live bytes move, always into the
//! fresh upper half, so the sources stay intact until the new state commits.
//! Because a record never crosses a multiple of `cap`, it moves as one piece.
//! An empty ring shrinks by simply taking a smaller modulus.
//!
//! This is the growable analogue of the classic byte ring with wrap-around
//! padding used by faster-fifo and ipmpsc; the relocation rule is the one
//! behind power-of-two hash-table doubling (each entry either stays or moves
//! by exactly the old size).
//!
//! Everything read back from memory is checked: the state comes from shared
//! memory that another process may have corrupted, so every length and
//! offset is validated and bad data yields [`Corrupt`], never a panic, an
//! out-of-bounds access or a long loop. Positions must leave
//! [`headroom`] below `u64::MAX` (a queue would have to move 16 EiB to get
//! there), so no position arithmetic of a valid ring can overflow; it is
//! checked all the same, and every loop is bounded by a constant.

/// Size of a record header in bytes.
pub(crate) const RECORD_HEADER: u64 = 16;
/// Records start at multiples of this.
pub(crate) const ALIGN: u64 = 16;

const KIND_DATA: u32 = u32::from_le_bytes(*b"ITEM");
const KIND_PAD: u32 = u32::from_le_bytes(*b"PAD_");
const KIND_RESV: u32 = u32::from_le_bytes(*b"RESV");
const KIND_TAKE: u32 = u32::from_le_bytes(*b"TAKE");
const KIND_DONE: u32 = u32::from_le_bytes(*b"DONE");

/// Most freed (`DONE`) and taken records a reader looks past, in front of
/// the head record or of a record it takes behind the head: takes behind
/// the head stop at this distance, so a valid ring never holds more freed
/// records at its head than this, and a hostile one cannot make a reader
/// loop.
pub(crate) const MAX_SKIP: usize = 64;

/// How far below `u64::MAX` every position of a valid ring must stay: room
/// for a push (padding up to `cap`, then a record of up to `max_cap`) and a
/// growth, with margin.
pub(crate) fn headroom(max_cap: u64) -> u64 {
    max_cap.saturating_mul(4)
}

/// Byte storage the ring lives in. Implementations check bounds themselves
/// and report failure instead of panicking.
pub(crate) trait Memory {
    /// Total bytes addressable (the largest capacity the ring may grow to).
    fn size(&self) -> u64;
    /// Copies `data` to `off`; false if out of bounds.
    fn write(&self, off: u64, data: &[u8]) -> bool;
    /// Runs `f` over `len` bytes at `off`; `None` if out of bounds.
    fn read_with<R>(&self, off: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R>;
    /// Copies `len` bytes from `src` to `dst` (non-overlapping); false if out
    /// of bounds.
    fn copy_within(&self, src: u64, dst: u64, len: u64) -> bool;
}

/// The ring's bookkeeping; lives in the queue's committed state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ring {
    /// Position of the oldest live byte (start of the next record to read).
    pub(crate) head: u64,
    /// Position one past the newest live byte.
    pub(crate) tail: u64,
    /// Current modulus: a power of two, at most `Memory::size()`.
    pub(crate) cap: u64,
    /// Number of data records between `head` and `tail`.
    pub(crate) count: u64,
}

/// The ring's memory or bookkeeping is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) &'static str);

/// Where a push goes, computed before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Push {
    /// Offset and length of a padding record to write first, if any.
    pad: Option<(u64, u64)>,
    /// Offset of the record header.
    off: u64,
    /// Payload length.
    len: u64,
    /// Tail after the push.
    new_tail: u64,
}

impl Push {
    /// Position of the record (its header).
    pub(crate) fn pos(&self) -> u64 {
        self.new_tail - record_size(self.len).unwrap_or(0)
    }
}

/// The record at the head of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Front {
    /// Offset of the payload.
    pub(crate) off: u64,
    /// Payload length.
    pub(crate) len: u64,
    /// Head after this record is removed (where the next record starts).
    pub(crate) new_head: u64,
    /// Position of the record (its header).
    pub(crate) pos: u64,
    /// `Some(tag)` for a reserved record whose payload is still being
    /// written (see [`Ring::write_headers`]): its bytes must not be read.
    pub(crate) reserved: Option<u32>,
    /// `Some(tag)` for an item that the process with slot `tag` may be
    /// reading without the lock (see [`Ring::take`]).
    pub(crate) taken: Option<u32>,
}

/// Total bytes a record with a `len`-byte payload occupies, or `None` on
/// overflow.
pub(crate) fn record_size(len: u64) -> Option<u64> {
    len.checked_add(RECORD_HEADER + ALIGN - 1)
        .map(|n| n & !(ALIGN - 1))
}

fn header_bytes(kind: u32, tag: u32, len: u64) -> [u8; RECORD_HEADER as usize] {
    let mut h = [0u8; RECORD_HEADER as usize];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[4..8].copy_from_slice(&tag.to_le_bytes());
    h[8..16].copy_from_slice(&len.to_le_bytes());
    h
}

impl Ring {
    /// An empty ring of capacity `cap` (a power of two, multiple of 16).
    pub(crate) fn new(cap: u64) -> Ring {
        Ring {
            head: 0,
            tail: 0,
            cap,
            count: 0,
        }
    }

    /// Bytes between head and tail, padding included.
    pub(crate) fn used(&self) -> u64 {
        self.tail.saturating_sub(self.head)
    }

    /// Checks the invariants that hold between operations.
    pub(crate) fn validate(&self, max_cap: u64) -> Result<(), Corrupt> {
        if !self.cap.is_power_of_two() || self.cap < ALIGN || self.cap > max_cap {
            return Err(Corrupt("capacity is not a power of two within bounds"));
        }
        if self.tail < self.head || self.tail - self.head > self.cap {
            return Err(Corrupt("head and tail are inconsistent"));
        }
        if self.tail > u64::MAX - headroom(max_cap) {
            return Err(Corrupt("positions too close to the integer limit"));
        }
        if !self.head.is_multiple_of(ALIGN) || !self.tail.is_multiple_of(ALIGN) {
            return Err(Corrupt("head or tail misaligned"));
        }
        if (self.count == 0) != (self.head == self.tail) || self.count > self.used() / RECORD_HEADER
        {
            return Err(Corrupt("item count does not match the ring"));
        }
        Ok(())
    }

    /// Plans a push of a `len`-byte payload, or `None` if it does not fit at
    /// the current capacity.
    pub(crate) fn plan_push(&self, len: u64) -> Option<Push> {
        let rec = record_size(len)?;
        let mut pos = self.tail;
        if self.count == 0 {
            // Nothing is live: jump to a multiple of cap so that a record of
            // up to `cap` bytes always fits in an empty ring.
            let off = pos % self.cap;
            if rec > self.cap - off {
                pos = pos.checked_add(self.cap - off)?;
            }
            if rec > self.cap {
                return None;
            }
            return Some(Push {
                pad: None,
                off: pos % self.cap,
                len,
                new_tail: pos.checked_add(rec)?,
            });
        }
        let off = pos % self.cap;
        let mut pad = None;
        if rec > self.cap - off {
            pad = Some((off, self.cap - off));
            pos = pos.checked_add(self.cap - off)?;
        }
        let new_tail = pos.checked_add(rec)?;
        (new_tail - self.head <= self.cap).then_some(Push {
            pad,
            off: pos % self.cap,
            len,
            new_tail,
        })
    }

    /// Writes the headers of a planned push and returns the payload offset;
    /// the caller writes the payload there, then calls [`Ring::commit_push`].
    /// With `reserve: Some(tag)` the record is a reservation tagged `tag`,
    /// which [`Ring::publish`] later turns into an item.
    pub(crate) fn write_headers(
        &self,
        mem: &impl Memory,
        push: &Push,
        reserve: Option<u32>,
    ) -> Result<u64, Corrupt> {
        if let Some((off, len)) = push.pad {
            if !mem.write(off, &header_bytes(KIND_PAD, 0, len)) {
                return Err(Corrupt("pad out of bounds"));
            }
        }
        let (kind, tag) = reserve.map_or((KIND_DATA, 0), |t| (KIND_RESV, t));
        if !mem.write(push.off, &header_bytes(kind, tag, push.len)) {
            return Err(Corrupt("record out of bounds"));
        }
        Ok(push.off + RECORD_HEADER)
    }

    /// The kind and tag of the record header at `pos`, if `pos` is an
    /// aligned position of this ring.
    fn kind_at(&self, mem: &impl Memory, pos: u64) -> Option<(u32, u32)> {
        if pos < self.head || pos >= self.tail || !pos.is_multiple_of(ALIGN) {
            return None;
        }
        mem.read_with(pos % self.cap, 8, |h| {
            let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap_or_default());
            (word(0), word(4))
        })
    }

    /// The reservation tag of the record at `pos`, if a reserved record of
    /// this ring starts there (`None` for anything else, garbage included).
    pub(crate) fn reserved_at(&self, mem: &impl Memory, pos: u64) -> Option<u32> {
        self.kind_at(mem, pos)
            .and_then(|(kind, tag)| (kind == KIND_RESV).then_some(tag))
    }

    /// The tag of the record at `pos` if it is reserved or taken: a process
    /// may be copying into or out of it without the lock.
    pub(crate) fn loaned_at(&self, mem: &impl Memory, pos: u64) -> Option<u32> {
        self.kind_at(mem, pos)
            .and_then(|(kind, tag)| (kind == KIND_RESV || kind == KIND_TAKE).then_some(tag))
    }

    /// Marks the item at `pos` (an item's or a taken record's header) as
    /// taken by `tag`, which reads it without the lock and then pops it or
    /// [untakes](Ring::untake) it.
    pub(crate) fn take(&self, mem: &impl Memory, pos: u64, tag: u32) -> Result<(), Corrupt> {
        match self.kind_at(mem, pos) {
            Some((KIND_DATA | KIND_TAKE, _)) => {}
            _ => return Err(Corrupt("the item to take vanished")),
        }
        let mut h = [0u8; 8];
        h[0..4].copy_from_slice(&KIND_TAKE.to_le_bytes());
        h[4..8].copy_from_slice(&tag.to_le_bytes());
        if !mem.write(pos % self.cap, &h) {
            return Err(Corrupt("record out of bounds"));
        }
        Ok(())
    }

    /// Whether the record at `pos` is taken by `tag`.
    pub(crate) fn taken_by(&self, mem: &impl Memory, pos: u64, tag: u32) -> bool {
        self.kind_at(mem, pos) == Some((KIND_TAKE, tag))
    }

    /// Turns the record at `pos` taken by `tag` back into a plain item (no
    /// effect on anything else).
    pub(crate) fn untake(&self, mem: &impl Memory, pos: u64, tag: u32) {
        if self.taken_by(mem, pos, tag) {
            let mut h = [0u8; 8];
            h[0..4].copy_from_slice(&KIND_DATA.to_le_bytes());
            let _ = mem.write(pos % self.cap, &h);
        }
    }

    /// Turns the reserved record at `pos`, tagged `tag`, into an item.
    /// Fails if no such reservation is there.
    pub(crate) fn publish(&self, mem: &impl Memory, pos: u64, tag: u32) -> Result<(), Corrupt> {
        if self.reserved_at(mem, pos) != Some(tag) {
            return Err(Corrupt("a reserved record vanished"));
        }
        if !mem.write(pos % self.cap, &KIND_DATA.to_le_bytes()) {
            return Err(Corrupt("record out of bounds"));
        }
        Ok(())
    }

    /// Makes a written push part of the ring.
    pub(crate) fn commit_push(&mut self, push: &Push) {
        if self.count == 0 {
            self.head = push.new_tail - record_size(push.len).unwrap_or(0);
        }
        self.tail = push.new_tail;
        self.count += 1;
    }

    /// Finds the oldest record, skipping padding; `None` if the ring is empty.
    pub(crate) fn front(&self, mem: &impl Memory) -> Result<Option<Front>, Corrupt> {
        let mut pos = self.head;
        // Padding only ever precedes a record at offset 0, and freed
        // records are at most `MAX_SKIP` (see there); the bound makes a
        // hostile ring unable to loop.
        for _ in 0..2 * MAX_SKIP + 4 {
            if pos == self.tail {
                return if self.count == 0 {
                    Ok(None)
                } else {
                    Err(Corrupt("count says items but ring is empty"))
                };
            }
            let off = pos % self.cap;
            let (kind, tag, len) = mem
                .read_with(off, RECORD_HEADER, |h| {
                    let kind = u32::from_le_bytes(h[0..4].try_into().unwrap_or_default());
                    let tag = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default());
                    let len = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
                    (kind, tag, len)
                })
                .ok_or(Corrupt("record header out of bounds"))?;
            let left = self.tail - pos;
            match kind {
                KIND_DONE => {
                    let rec = record_size(len).ok_or(Corrupt("record length overflows"))?;
                    if rec >= left || rec > self.cap - off {
                        return Err(Corrupt("freed record exceeds the ring"));
                    }
                    pos += rec;
                }
                KIND_PAD => {
                    // A pad ends where the ring ended when it was written: a
                    // multiple of the capacity at the time, which growth may
                    // since have doubled.
                    if len < ALIGN
                        || !len.is_multiple_of(ALIGN)
                        || len >= left
                        || len > self.cap - off
                    {
                        return Err(Corrupt("bad padding record"));
                    }
                    pos += len;
                }
                KIND_DATA | KIND_RESV | KIND_TAKE => {
                    let rec = record_size(len).ok_or(Corrupt("record length overflows"))?;
                    if rec > left || rec > self.cap - off {
                        return Err(Corrupt("record length exceeds the ring"));
                    }
                    return Ok(Some(Front {
                        off: off + RECORD_HEADER,
                        len,
                        new_head: pos + rec,
                        pos,
                        reserved: (kind == KIND_RESV).then_some(tag),
                        taken: (kind == KIND_TAKE).then_some(tag),
                    }));
                }
                _ => return Err(Corrupt("unknown record kind")),
            }
        }
        Err(Corrupt("too many padding or freed records"))
    }

    /// The record that starts at `pos` (a position between head and tail
    /// where a record starts, as `Front::new_head` gives), as [`Ring::front`]
    /// reports it (`None` for padding or a freed record, whose end it
    /// returns instead).
    pub(crate) fn record_at(
        &self,
        mem: &impl Memory,
        pos: u64,
    ) -> Result<Result<Front, u64>, Corrupt> {
        if pos < self.head || pos >= self.tail || !pos.is_multiple_of(ALIGN) {
            return Err(Corrupt("record position outside the ring"));
        }
        let off = pos % self.cap;
        let (kind, tag, len) = mem
            .read_with(off, RECORD_HEADER, |h| {
                let kind = u32::from_le_bytes(h[0..4].try_into().unwrap_or_default());
                let tag = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default());
                let len = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
                (kind, tag, len)
            })
            .ok_or(Corrupt("record header out of bounds"))?;
        let left = self.tail - pos;
        let rec = match kind {
            KIND_PAD => len,
            _ => record_size(len).ok_or(Corrupt("record length overflows"))?,
        };
        if rec < ALIGN || !rec.is_multiple_of(ALIGN) || rec > left || rec > self.cap - off {
            return Err(Corrupt("record length exceeds the ring"));
        }
        match kind {
            KIND_PAD | KIND_DONE => Ok(Err(pos + rec)),
            KIND_DATA | KIND_RESV | KIND_TAKE => Ok(Ok(Front {
                off: off + RECORD_HEADER,
                len,
                new_head: pos + rec,
                pos,
                reserved: (kind == KIND_RESV).then_some(tag),
                taken: (kind == KIND_TAKE).then_some(tag),
            })),
            _ => Err(Corrupt("unknown record kind")),
        }
    }

    /// Marks the record at `pos` taken by `tag` as freed (after
    /// [`Ring::pop_behind`] counted it out); no effect on anything else.
    pub(crate) fn mark_done(&self, mem: &impl Memory, pos: u64, tag: u32) {
        if self.taken_by(mem, pos, tag) {
            let _ = mem.write(pos % self.cap, &KIND_DONE.to_le_bytes());
        }
    }

    /// Moves the head past the padding and freed records at it (as many as
    /// [`Ring::front`] would skip), giving their space back.
    pub(crate) fn skip_freed(&mut self, mem: &impl Memory) {
        for _ in 0..2 * MAX_SKIP + 4 {
            if self.count == 0 || self.head >= self.tail {
                return;
            }
            match self.record_at(mem, self.head) {
                Ok(Err(next)) if next < self.tail => self.head = next,
                _ => return,
            }
        }
    }

    /// Counts out a record behind the head record (which stays counted),
    /// to be marked with [`Ring::mark_done`].
    pub(crate) fn pop_behind(&mut self) {
        debug_assert!(self.count >= 2);
        self.count = self.count.saturating_sub(1).max(1);
    }

    /// Removes the record found by [`Ring::front`].
    pub(crate) fn pop(&mut self, front: &Front) {
        self.head = front.new_head;
        self.count -= 1;
        if self.count == 0 {
            self.head = self.tail;
        }
    }

    /// Doubles the capacity, moving live bytes to their new offsets. The
    /// caller must have made `[cap, 2·cap)` writable.
    pub(crate) fn grow(&mut self, mem: &impl Memory) -> Result<(), Corrupt> {
        let new_cap = self
            .cap
            .checked_mul(2)
            .filter(|&c| c <= mem.size())
            .ok_or(Corrupt("cannot grow"))?;
        if self.tail < self.head || self.tail - self.head > self.cap {
            return Err(Corrupt("head and tail are inconsistent"));
        }
        let mut pos = self.head;
        // The live bytes span at most `cap` bytes, so they touch at most two
        // blocks of `cap`: two rounds, whatever the state says.
        for _ in 0..2 {
            if pos >= self.tail {
                break;
            }
            // A run that stays within one block of `cap` has a constant
            // `cap` bit, so it either stays or moves as a whole.
            let block_end = (pos / self.cap)
                .checked_add(1)
                .and_then(|b| b.checked_mul(self.cap))
                .ok_or(Corrupt("positions overflow"))?;
            let end = block_end.min(self.tail);
            if pos & self.cap != 0 && !mem.copy_within(pos % self.cap, pos % new_cap, end - pos) {
                return Err(Corrupt("relocation out of bounds"));
            }
            pos = end;
        }
        if pos < self.tail {
            return Err(Corrupt("live bytes span more than the capacity"));
        }
        self.cap = new_cap;
        Ok(())
    }

    /// Shrinks an empty ring to `new_cap`.
    pub(crate) fn shrink_empty(&mut self, new_cap: u64) {
        debug_assert!(self.count == 0 && new_cap.is_power_of_two());
        self.cap = new_cap;
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
}
