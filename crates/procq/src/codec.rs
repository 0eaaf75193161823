//! How items become bytes: postcard over serde, with a fast path for bytes.
//!
//! postcard 1.x has a documented, stable wire format and is maintained
//! (bincode, the usual choice, is not: RUSTSEC-2025-0141). Generic serde
//! handling of `Vec<u8>` goes element by element, which made byte payloads up
//! to 60× slower in ipmpsc (#8) and ipc-channel (#50); `Vec<u8>` therefore
//! takes a fast path that writes the very bytes postcard would (a varint
//! length, then the data) with one `memcpy`.
//!
//! Wire format of one item, as other languages must write it: the postcard
//! encoding of the value. For `Vec<u8>` and `String` that is a LEB128 varint
//! of the length followed by the raw bytes, so the two are interchangeable.

use std::any::Any;
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

/// Encodes `value` and hands the bytes to `f`.
pub(crate) fn with_encoded<T: Serialize + 'static, R>(
    value: &T,
    f: impl FnOnce(Encoded<'_>) -> Result<R>,
) -> Result<R> {
    if let Some(bytes) = (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        let mut prefix = [0u8; 10];
        let head = postcard::to_slice(&bytes.len(), &mut prefix).map_err(Error::codec)?;
        return f(Encoded { head, body: bytes });
    }
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
        if let Some(bytes) = (item as &dyn Any).downcast_ref::<Vec<u8>>() {
            let mut prefix = [0u8; 10];
            let head = postcard::to_slice(&bytes.len(), &mut prefix).map_err(Error::codec)?;
            buf.extend_from_slice(head);
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
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T> {
    let bad = || Error::codec(postcard::Error::DeserializeBadEncoding);
    let mut slot: Option<T> = None;
    if let Some(out) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        let (len, rest) = postcard::take_from_bytes::<usize>(bytes).map_err(Error::codec)?;
        if len != rest.len() {
            return Err(bad());
        }
        *out = Some(rest.to_vec());
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

    #[test]
    fn fingerprints_differ_by_type() {
        assert_ne!(fingerprint::<u32>(), fingerprint::<u64>());
        assert_eq!(fingerprint::<String>(), fingerprint::<String>());
        assert_ne!(fingerprint::<String>(), 0);
    }
}
