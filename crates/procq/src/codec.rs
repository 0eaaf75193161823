//! How items become bytes: postcard over serde, with a fast path for bytes.
//!
//! postcard 1.x has a documented, stable wire format and is maintained
//! (bincode, the usual choice, is not: RUSTSEC-2025-0141). Generic serde
//! handling of `Vec<u8>` goes element by element, which made byte payloads up
//! to 60× slower in ipmpsc (#8) and ipc-channel (#50); `Vec<u8>` therefore
//! takes a fast path that writes the very bytes postcard would (a varint
//! length, then the data) with one `memcpy`, and so does `String`.
//! Integers (`u8`…`u64`, `usize`, `i8`…`i64`, `isize`) take a fast path too,
//! which writes and reads postcard's bytes (a LEB128 varint, zigzag for the
//! signed ones, one raw byte for `u8`/`i8`) directly, with no serde and no
//! thread-local buffer: 100 of a `u64` put + get's 2160 instructions went
//! (docs/performance-history.md).
//!
//! Wire format of one item, as other languages must write it: the postcard
//! encoding of the value. For `Vec<u8>` and `String` that is a LEB128 varint
//! of the length followed by the raw bytes, so the two are interchangeable.

use std::any::{Any, TypeId};
use std::borrow::Borrow;
use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// An encoded item in (at most) two pieces, to avoid copying byte payloads
/// into a scratch buffer first.
pub(crate) struct Encoded<'a> {
    /// Leading bytes (the whole encoding for most types).
    pub(crate) head: &'a [u8],
    /// Trailing bytes (the payload of a `Vec<u8>`), or empty.
    pub(crate) body: &'a [u8],
}

impl Encoded<'_> {
    /// Total encoded length.
    pub(crate) fn len(&self) -> u64 {
        (self.head.len() + self.body.len()) as u64
    }

    /// Both pieces as one buffer (for transports that take one string,
    /// and for futures, which keep the item until it is put).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut one = Vec::with_capacity(self.head.len() + self.body.len());
        one.extend_from_slice(self.head);
        one.extend_from_slice(self.body);
        one
    }
}

thread_local! {
    /// Reused per thread so that `put` does not allocate per item.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Most bytes a LEB128 varint of a `u64` takes.
const VARINT_MAX: usize = 10;

/// Writes `n` as postcard writes an unsigned integer (LEB128: seven bits a
/// byte, low bits first, the top bit set on every byte but the last) and
/// returns the bytes written.
#[inline]
fn put_varint(mut n: u64, out: &mut [u8; VARINT_MAX]) -> &[u8] {
    if n < 1 << 56 {
        // Up to eight bytes at once: each group of seven bits moved to its
        // byte by three shifts (the inverse of `whole_varint`'s), then the
        // top bits set on all bytes but the last. A byte at a time took
        // about 50 instructions for a 6-byte varint.
        let groups = (u64::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize;
        let mut x = (n & 0x0fff_ffff) | (n & 0x00ff_ffff_f000_0000) << 4;
        x = (x & 0x0000_3fff_0000_3fff) | (x & 0x0fff_c000_0fff_c000) << 2;
        x = (x & 0x007f_007f_007f_007f) | (x & 0x3f80_3f80_3f80_3f80) << 1;
        x |= HIGH_BITS & ((1 << (8 * (groups - 1))) - 1);
        out[..8].copy_from_slice(&x.to_le_bytes());
        return &out[..groups];
    }
    let mut i = 0;
    while n >= 0x80 {
        out[i] = n as u8 | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    &out[..=i]
}

/// The top bit of each of the eight bytes of a word: a varint's "more
/// bytes follow" bits.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Reads `bytes`, all of them, as one varint of an integer of `bits` bits,
/// as [`take_varint`] followed by a check that nothing is left does, and
/// with the same errors.
#[inline(always)]
fn whole_varint(bytes: &[u8], bits: u32) -> Result<u64> {
    if let Some(n) = whole_varint_word(bytes, bits) {
        return Ok(n);
    }
    let (n, rest) = take_varint(bytes, bits)?;
    if !rest.is_empty() {
        return Err(Error::codec(postcard::Error::DeserializeBadEncoding));
    }
    Ok(n)
}

/// [`whole_varint`] of a varint of one to eight bytes, read as one word:
/// `None` unless `bytes` is exactly one varint whose value fits in `bits`
/// bits (anything else goes the byte-at-a-time way, which names the
/// error). A byte at a time took about 12 instructions a byte.
#[inline(always)]
fn whole_varint_word(bytes: &[u8], bits: u32) -> Option<u64> {
    let n = bytes.len();
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    let byte = |at: usize| bytes.get(at).map_or(0, |&b| u64::from(b));
    // The bytes, little-endian, zero above the last: two overlapping
    // 4-byte reads from 4 bytes on, three single bytes below.
    let w = match n {
        4..=8 => word(0) | word(n - 4) << (8 * (n - 4)),
        1..=3 => byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1)),
        _ => return None,
    };
    // More-bytes bits on every byte but the last, and on no other.
    if w & HIGH_BITS != HIGH_BITS & ((1 << (8 * (n - 1))) - 1) {
        return None;
    }
    // Seven bits a byte, packed by three shifts: byte pairs, then 14-bit
    // pairs, then 28-bit pairs.
    let mut x = w & !HIGH_BITS;
    x = (x & 0x007f_007f_007f_007f) | (x >> 1 & 0x3f80_3f80_3f80_3f80);
    x = (x & 0x0000_3fff_0000_3fff) | (x >> 2 & 0x0fff_c000_0fff_c000);
    x = (x & 0x0fff_ffff) | (x >> 4 & 0x00ff_ffff_f000_0000);
    // `take_varint` reads at most `ceil(bits / 7)` bytes, the last of them
    // with no bit beyond `bits`.
    (n <= bits.div_ceil(7) as usize && (bits >= 64 || x >> bits == 0)).then_some(x)
}

/// Reads a varint as postcard reads an integer of `bits` bits: at most
/// `ceil(bits / 7)` bytes, the last of them holding no bit beyond `bits`
/// (so the value fits). Returns it and the bytes after it.
#[inline]
fn take_varint(bytes: &[u8], bits: u32) -> Result<(u64, &[u8])> {
    let max = bits.div_ceil(7) as usize;
    let mut out = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(max) {
        out |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i == max - 1 && u32::from(b) >= 1 << (bits % 7) {
                break;
            }
            return Ok((out, &bytes[i + 1..]));
        }
    }
    if bytes.len() < max && bytes.iter().all(|b| b & 0x80 != 0) {
        return Err(Error::codec(postcard::Error::DeserializeUnexpectedEnd));
    }
    Err(Error::codec(postcard::Error::DeserializeBadVarint))
}

/// Postcard's zigzag mapping of a signed integer onto an unsigned one
/// (0, -1, 1, -2, … → 0, 1, 2, 3, …).
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

/// How one integer type of the fast path is written: a varint of its value
/// (`Ok`), or one raw byte (`Err`, postcard's `u8` and `i8`).
///
/// Generic (not `&dyn Any`) so that each instance compares constant type
/// ids, which the compiler folds: an instance costs only its own branch.
#[inline(always)]
fn int_wire<T: 'static>(value: &T) -> Option<std::result::Result<u64, u8>> {
    let value = value as &dyn Any;
    macro_rules! unsigned {
        ($($t:ty),*) => {$(
            if is::<T, $t>() {
                return value.downcast_ref::<$t>().map(|&n| Ok(n as u64));
            }
        )*};
    }
    macro_rules! signed {
        ($($t:ty),*) => {$(
            if is::<T, $t>() {
                return value.downcast_ref::<$t>().map(|&n| Ok(zigzag(n as i64)));
            }
        )*};
    }
    unsigned!(u64, u32, usize, u16);
    signed!(i64, i32, isize, i16);
    if is::<T, u8>() {
        return value.downcast_ref::<u8>().map(|&n| Err(n));
    }
    if is::<T, i8>() {
        return value.downcast_ref::<i8>().map(|&n| Err(n as u8));
    }
    None
}

/// Whether `T` is `U` (a constant once monomorphized).
#[inline(always)]
fn is<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Decodes `bytes` into `slot` if `slot` is an `Option` of an integer type
/// of the fast path; `None` if it is not (then postcard decodes).
#[inline(always)]
fn decode_int<T: 'static>(slot: &mut Option<T>, bytes: &[u8]) -> Option<Result<()>> {
    let slot = slot as &mut dyn Any;
    fn whole(rest: &[u8]) -> Result<()> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Error::codec(postcard::Error::DeserializeBadEncoding))
        }
    }
    macro_rules! unsigned {
        ($($t:ty),*) => {$(
            if is::<T, $t>() {
                let out = slot.downcast_mut::<Option<$t>>()?;
                return Some(whole_varint(bytes, <$t>::BITS).map(|n| *out = Some(n as $t)));
            }
        )*};
    }
    macro_rules! signed {
        ($($t:ty),*) => {$(
            if is::<T, $t>() {
                let out = slot.downcast_mut::<Option<$t>>()?;
                return Some(
                    whole_varint(bytes, <$t>::BITS).map(|n| *out = Some(unzigzag(n) as $t)),
                );
            }
        )*};
    }
    unsigned!(u64, u32, usize, u16);
    signed!(i64, i32, isize, i16);
    macro_rules! byte {
        ($($t:ty),*) => {$(
            if is::<T, $t>() {
                let out = slot.downcast_mut::<Option<$t>>()?;
                return Some(match bytes {
                    [b] => {
                        *out = Some(*b as $t);
                        Ok(())
                    }
                    [] => Err(Error::codec(postcard::Error::DeserializeUnexpectedEnd)),
                    _ => whole(&bytes[1..]),
                });
            }
        )*};
    }
    byte!(u8, i8);
    None
}

/// The length prefix and bytes of a `Vec<u8>` or a `String` (the same wire
/// format), or `None` for any other type.
#[inline(always)]
fn as_bytes<T: 'static>(value: &T) -> Option<&[u8]> {
    let value = value as &dyn Any;
    if is::<T, Vec<u8>>() {
        return value.downcast_ref::<Vec<u8>>().map(Vec::as_slice);
    }
    if is::<T, String>() {
        return value.downcast_ref::<String>().map(String::as_bytes);
    }
    None
}

/// Encodes `value` and hands the bytes to `f`.
#[inline]
pub(crate) fn with_encoded<T: Serialize + 'static, R>(
    value: &T,
    f: impl FnOnce(Encoded<'_>) -> Result<R>,
) -> Result<R> {
    let mut prefix = [0u8; VARINT_MAX];
    if let Some(wire) = int_wire(value) {
        let byte;
        let head = match wire {
            Ok(n) => put_varint(n, &mut prefix),
            Err(b) => {
                byte = [b];
                &byte[..]
            }
        };
        return f(Encoded { head, body: &[] });
    }
    if let Some(bytes) = as_bytes(value) {
        let head = put_varint(bytes.len() as u64, &mut prefix);
        return f(Encoded { head, body: bytes });
    }
    with_serialized(value, f)
}

/// [`with_encoded`] through postcard, into a buffer reused per thread.
fn with_serialized<T: Serialize, R>(
    value: &T,
    f: impl FnOnce(Encoded<'_>) -> Result<R>,
) -> Result<R> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let buf_taken = std::mem::take(&mut *buf);
            let encoded = postcard::to_extend(value, buf_taken);
            match encoded {
                Ok(v) => {
                    *buf = v;
                    let out = f(Encoded {
                        head: &buf,
                        body: &[],
                    });
                    if buf.capacity() > 1 << 20 {
                        // Do not pin a huge buffer to the thread forever.
                        *buf = Vec::new();
                    }
                    out
                }
                Err(e) => Err(Error::codec(e)),
            }
        }
        // Re-entered from inside `f` (a Serialize impl that puts): no reuse.
        Err(_) => {
            let v = postcard::to_allocvec(value).map_err(Error::codec)?;
            f(Encoded {
                head: &v,
                body: &[],
            })
        }
    })
}

/// Encodes every item back to back onto `buf`, and each one's end offset
/// onto `ends`: one buffer for a whole batch (see [`split`]).
pub(crate) fn encode_many<T, B>(
    items: impl IntoIterator<Item = B>,
    buf: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<()>
where
    T: Serialize + 'static,
    B: Borrow<T>,
{
    for item in items {
        let item: &T = item.borrow();
        let mut prefix = [0u8; VARINT_MAX];
        if let Some(wire) = int_wire(item) {
            match wire {
                Ok(n) => buf.extend_from_slice(put_varint(n, &mut prefix)),
                Err(b) => buf.push(b),
            }
        } else if let Some(bytes) = as_bytes(item) {
            buf.extend_from_slice(put_varint(bytes.len() as u64, &mut prefix));
            buf.extend_from_slice(bytes);
        } else {
            *buf = postcard::to_extend(item, std::mem::take(buf)).map_err(Error::codec)?;
        }
        ends.push(buf.len());
    }
    Ok(())
}

/// The items [`encode_many`] wrote, each as one piece.
pub(crate) fn split<'a>(buf: &'a [u8], ends: &[usize]) -> Vec<Encoded<'a>> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let head = &buf[start..end];
            start = end;
            Encoded { head, body: &[] }
        })
        .collect()
}

/// Decodes one item that must occupy all of `bytes`.
#[inline]
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T> {
    let bad = || Error::codec(postcard::Error::DeserializeBadEncoding);
    let mut slot: Option<T> = None;
    if let Some(done) = decode_int(&mut slot, bytes) {
        done?;
        return slot.ok_or_else(bad);
    }
    if is::<T, String>() || is::<T, Vec<u8>>() {
        let any = &mut slot as &mut dyn Any;
        let (len, rest) = take_varint(bytes, usize::BITS)?;
        if len != rest.len() as u64 {
            return Err(bad());
        }
        if let Some(out) = any.downcast_mut::<Option<Vec<u8>>>() {
            *out = Some(rest.to_vec());
        } else if let Some(out) = any.downcast_mut::<Option<String>>() {
            let s = std::str::from_utf8(rest)
                .map_err(|_| Error::codec(postcard::Error::DeserializeBadUtf8))?;
            *out = Some(s.to_owned());
        }
        return slot.ok_or_else(bad);
    }
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(Error::codec)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(value)
}

/// A 64-bit fingerprint of `T`'s type name, stored in the queue header so
/// that a queue made for one item type is not opened as another.
///
/// Fingerprint 0 means "untyped" (raw bytes, the CLI, Python) and is
/// accepted by every typed handle.
pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
    // FNV-1a: stable across runs and builds, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::any::type_name::<T>().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Serialize + DeserializeOwned + 'static + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = with_encoded(&v, |e| Ok([e.head, e.body].concat())).unwrap();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&v).unwrap(),
            "fast path must match postcard"
        );
        assert_eq!(decode::<T>(&bytes).unwrap(), v);
    }

    #[test]
    fn encodings_match_postcard() {
        roundtrip(0u64);
        roundtrip(u64::MAX);
        roundtrip(String::from("Data A"));
        roundtrip(vec![0u8; 0]);
        roundtrip((0..300).map(|i| i as u8).collect::<Vec<u8>>());
        roundtrip(Some((1i32, "x".to_owned(), vec![1.5f64])));
    }

    #[test]
    fn string_and_bytes_share_a_wire_format() {
        let s = with_encoded(&"héllo".to_owned(), |e| Ok([e.head, e.body].concat())).unwrap();
        assert_eq!(decode::<Vec<u8>>(&s).unwrap(), "héllo".as_bytes());
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(decode::<Vec<u8>>(&[5, 1, 2]).is_err());
        assert!(decode::<u32>(&[]).is_err());
        assert!(decode::<u8>(&[1, 2]).is_err(), "trailing bytes");
        assert!(decode::<String>(&[2, 0xff, 0xfe]).is_err(), "invalid utf-8");
    }

    #[test]
    fn batches_encode_like_single_items() {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        let items = vec![vec![1u8, 2], vec![], vec![7; 300]];
        encode_many::<Vec<u8>, _>(&items, &mut buf, &mut ends).unwrap();
        let parts = split(&buf, &ends);
        assert_eq!(parts.len(), 3);
        for (part, item) in parts.iter().zip(&items) {
            assert_eq!(part.head, postcard::to_allocvec(item).unwrap());
            assert_eq!(decode::<Vec<u8>>(part.head).unwrap(), *item);
        }
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        encode_many::<String, _>(["a".to_owned(), "bc".to_owned()], &mut buf, &mut ends).unwrap();
        assert_eq!(
            (buf.as_slice(), ends.as_slice()),
            (&b"\x01a\x02bc"[..], &[2, 5][..])
        );
    }

    /// Encodes through the fast path and through postcard alone.
    fn both<T: Serialize + 'static>(v: &T) -> (Vec<u8>, Vec<u8>) {
        let fast = with_encoded(v, |e| Ok([e.head, e.body].concat())).unwrap();
        (fast, postcard::to_allocvec(v).unwrap())
    }

    /// Decodes through the fast path and through postcard alone (`None`
    /// for an error, whichever it is).
    fn both_decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> (Option<T>, Option<T>) {
        let slow = postcard::take_from_bytes::<T>(bytes)
            .ok()
            .filter(|(_, rest)| rest.is_empty())
            .map(|(v, _)| v);
        (decode::<T>(bytes).ok(), slow)
    }

    proptest::proptest! {
        #[test]
        fn integers_are_postcards_bytes(a: u64, b: i64, c: u32, d: i32, e: u16, f: i16, g: u8, h: i8) {
            macro_rules! check {
                ($($v:expr),*) => {$(
                    let (fast, slow) = both(&$v);
                    proptest::prop_assert_eq!(&fast, &slow);
                    proptest::prop_assert_eq!(decode(&fast).ok(), Some($v));
                )*};
            }
            check!(a, b, c, d, e, f, g, h, a as usize, b as isize, a >> (a % 64), b >> (a % 64));
        }

        #[test]
        fn any_bytes_decode_as_postcard_decodes_them(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::any::<u8>(), 0x80u8..=0xff, 0u8..=3], 0..12)) {
            macro_rules! check {
                ($($t:ty),*) => {$(
                    let (fast, slow) = both_decode::<$t>(&bytes);
                    proptest::prop_assert_eq!(fast, slow, "{} from {:?}", stringify!($t), bytes);
                )*};
            }
            check!(u64, i64, u32, i32, u16, i16, u8, i8, usize, isize, Vec<u8>, String);
        }

        #[test]
        fn strings_and_bytes_are_postcards_bytes(s: String, v: Vec<u8>) {
            let (fast, slow) = both(&s);
            proptest::prop_assert_eq!(&fast, &slow);
            proptest::prop_assert_eq!(decode::<String>(&fast).ok(), Some(s));
            let (fast, slow) = both(&v);
            proptest::prop_assert_eq!(&fast, &slow);
            proptest::prop_assert_eq!(decode::<Vec<u8>>(&fast).ok(), Some(v));
        }
    }

    #[test]
    fn integer_edges_match_postcard() {
        for n in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            roundtrip(n);
            roundtrip(n as u32);
            roundtrip(n as u16);
            roundtrip(n as i64);
            roundtrip(n as i32);
            roundtrip(n as u8);
        }
        roundtrip(i64::MIN);
        roundtrip(i32::MIN);
        // Overlong but in range: postcard takes it, so does the fast path.
        assert_eq!(decode::<u64>(&[0x80, 0x00]).unwrap(), 0);
        // Beyond the type: a bad varint, not a wrapped value.
        assert!(decode::<u32>(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        assert!(decode::<u64>(&[0xff; 10]).is_err());
        assert!(decode::<u16>(&[0x80]).is_err(), "cut short");
    }

    #[test]
    fn fingerprints_differ_by_type() {
        assert_ne!(fingerprint::<u32>(), fingerprint::<u64>());
        assert_eq!(fingerprint::<String>(), fingerprint::<String>());
        assert_ne!(fingerprint::<String>(), 0);
    }
}
