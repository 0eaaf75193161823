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

/// The (kind, tag, payload length) of the record header at `off`, bounds
/// checked by `mem` (the values themselves are the caller's to check).
fn read_header(mem: &impl Memory, off: u64) -> Result<(u32, u32, u64), Corrupt> {
    mem.read_with(off, RECORD_HEADER, |h| {
        let word = |r: std::ops::Range<usize>| h[r].try_into().unwrap_or_default();
        (
            u32::from_le_bytes(word(0..4)),
            u32::from_le_bytes(word(4..8)),
            u64::from_le_bytes(h[8..16].try_into().unwrap_or_default()),
        )
    })
    .ok_or(Corrupt("record header out of bounds"))
}

/// What [`Ring::validate`]'s first check that failed names.
#[cold]
fn first_fault(faults: [bool; 5]) -> &'static str {
    const WHAT: [&str; 5] = [
        "capacity is not a power of two within bounds",
        "head and tail are inconsistent",
        "positions too close to the integer limit",
        "head or tail misaligned",
        "item count does not match the ring",
    ];
    faults
        .iter()
        .position(|&bad| bad)
        .map_or("no fault", |i| WHAT[i])
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

    /// Where position `pos` lives in the data area: `pos mod cap`, as a
    /// mask (`cap` is a power of two in every ring that passed
    /// [`Ring::validate`], which every ring read from shared memory does
    /// before use; a division is dozens of cycles).
    #[inline]
    pub(crate) fn offset(&self, pos: u64) -> u64 {
        pos & self.cap.wrapping_sub(1)
    }

    /// Bytes between head and tail, padding included.
    pub(crate) fn used(&self) -> u64 {
        self.tail.saturating_sub(self.head)
    }

    /// Checks the invariants that hold between operations.
    #[inline(always)]
    pub(crate) fn validate(&self, max_cap: u64) -> Result<(), Corrupt> {
        let (cap, head, tail, count) = (self.cap, self.head, self.tail, self.count);
        let used = tail.wrapping_sub(head);
        // Every check is worked out, without a branch of its own (this runs
        // on every lock: each `if` cost a few instructions more); the
        // first that fails names the fault. `cap & (cap - 1)` rather than
        // `is_power_of_two`, a bit count that costs a dozen instructions
        // without `popcnt`; `cap >= ALIGN` rules out 0.
        let faults = [
            (cap < ALIGN) | (cap & cap.wrapping_sub(1) != 0) | (cap > max_cap),
            (tail < head) | (used > cap),
            tail > u64::MAX - headroom(max_cap),
            (head | tail) % ALIGN != 0,
            ((count == 0) != (head == tail)) | (count > self.used() / RECORD_HEADER),
        ];
        // One branch for the common case, none per check.
        if !faults.iter().fold(false, |any, &bad| any | bad) {
            return Ok(());
        }
        Err(Corrupt(first_fault(faults)))
    }

    /// Plans a push of a `len`-byte payload, or `None` if it does not fit at
    /// the current capacity.
    #[inline(always)]
    pub(crate) fn plan_push(&self, len: u64) -> Option<Push> {
        let rec = record_size(len)?;
        let mut pos = self.tail;
        if self.count == 0 {
            // Nothing is live: jump to a multiple of cap so that a record of
            // up to `cap` bytes always fits in an empty ring.
            let off = self.offset(pos);
            if rec > self.cap - off {
                pos = pos.checked_add(self.cap - off)?;
            }
            if rec > self.cap {
                return None;
            }
            return Some(Push {
                pad: None,
                off: self.offset(pos),
                len,
                new_tail: pos.checked_add(rec)?,
            });
        }
        let off = self.offset(pos);
        let mut pad = None;
        if rec > self.cap - off {
            pad = Some((off, self.cap - off));
            pos = pos.checked_add(self.cap - off)?;
        }
        let new_tail = pos.checked_add(rec)?;
        (new_tail - self.head <= self.cap).then_some(Push {
            pad,
            off: self.offset(pos),
            len,
            new_tail,
        })
    }

    /// Writes the headers of a planned push and returns the payload offset;
    /// the caller writes the payload there, then calls [`Ring::commit_push`].
    /// With `reserve: Some(tag)` the record is a reservation tagged `tag`,
    /// which [`Ring::publish`] later turns into an item.
    #[inline]
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
        mem.read_with(self.offset(pos), 8, |h| {
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
        if !mem.write(self.offset(pos), &h) {
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
            let _ = mem.write(self.offset(pos), &h);
        }
    }

    /// Turns the reserved record at `pos`, tagged `tag`, into an item.
    /// Fails if no such reservation is there.
    pub(crate) fn publish(&self, mem: &impl Memory, pos: u64, tag: u32) -> Result<(), Corrupt> {
        if self.reserved_at(mem, pos) != Some(tag) {
            return Err(Corrupt("a reserved record vanished"));
        }
        if !mem.write(self.offset(pos), &KIND_DATA.to_le_bytes()) {
            return Err(Corrupt("record out of bounds"));
        }
        Ok(())
    }

    /// Makes a written push part of the ring.
    #[inline]
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
            let off = self.offset(pos);
            let (kind, tag, len) = read_header(mem, off)?;
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
                    return self.record_of(pos, (kind, tag, len)).map(Some);
                }
                _ => return Err(Corrupt("unknown record kind")),
            }
        }
        Err(Corrupt("too many padding or freed records"))
    }

    /// The item, reservation or take at `pos` (between head and tail, a
    /// position where a record starts), from its header, if its length
    /// fits the ring.
    #[inline]
    fn record_of(&self, pos: u64, (kind, tag, len): (u32, u32, u64)) -> Result<Front, Corrupt> {
        let off = self.offset(pos);
        let rec = record_size(len).ok_or(Corrupt("record length overflows"))?;
        if rec > self.tail - pos || rec > self.cap - off {
            return Err(Corrupt("record length exceeds the ring"));
        }
        Ok(Front {
            off: off + RECORD_HEADER,
            len,
            new_head: pos + rec,
            pos,
            reserved: (kind == KIND_RESV).then_some(tag),
            taken: (kind == KIND_TAKE).then_some(tag),
        })
    }

    /// The record at the head if it is a plain item, as [`Ring::front`]
    /// finds it; `None` for anything else — an empty ring, padding, a
    /// freed, reserved or taken record, a bad header —, which `front`
    /// sorts out (the small-item fast path then leaves it to the general
    /// path, see `fast`). No walk: the common case reads one header.
    #[inline(always)]
    pub(crate) fn head_item(&self, mem: &impl Memory) -> Option<Front> {
        if self.count == 0 || self.head == self.tail {
            return None;
        }
        let header = read_header(mem, self.offset(self.head)).ok()?;
        if header.0 != KIND_DATA {
            return None;
        }
        self.record_of(self.head, header).ok()
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
        let off = self.offset(pos);
        let (kind, tag, len) = read_header(mem, off)?;
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
            KIND_DATA | KIND_RESV | KIND_TAKE => self.record_of(pos, (kind, tag, len)).map(Ok),
            _ => Err(Corrupt("unknown record kind")),
        }
    }

    /// Marks the record at `pos` taken by `tag` as freed (after
    /// [`Ring::pop_behind`] counted it out); no effect on anything else.
    pub(crate) fn mark_done(&self, mem: &impl Memory, pos: u64, tag: u32) {
        if self.taken_by(mem, pos, tag) {
            let _ = mem.write(self.offset(pos), &KIND_DONE.to_le_bytes());
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
    #[inline]
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
            if pos & self.cap != 0
                && !mem.copy_within(self.offset(pos), pos & (new_cap - 1), end - pos)
            {
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
#[path = "ring_tests.rs"]
pub(crate) mod tests;
