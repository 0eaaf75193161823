//! The item format: how a Python object becomes the bytes of one queue
//! record, and back.
//!
//! procq's core stores byte strings ([`procq::RawQueue`]); this module
//! decides what those bytes are for Python objects. A queue has one of two
//! codecs, chosen at creation:
//!
//! * `"pickle"` (the default, like `multiprocessing.Queue`): any picklable
//!   object. The first byte of a record says how the rest is to be read:
//!
//!   | first byte   | item          | rest of the record                      |
//!   |--------------|---------------|-----------------------------------------|
//!   | `0x80`       | any object    | the record *is* `pickle.dumps(obj, 5)`  |
//!   | `b'b'` 0x62  | `bytes`       | the bytes, verbatim                     |
//!   | `b's'` 0x73  | `str`         | UTF-8                                   |
//!   | `b'i'` 0x69  | `int` in i64  | 8 bytes, little-endian two's complement |
//!   | `b'f'` 0x66  | `float`       | 8 bytes, IEEE 754 binary64, little-endian |
//!   | `b'N'` 0x4e  | `None`        | nothing                                 |
//!   | `b'T'`/`b'F'`| `True`/`False`| nothing                                 |
//!   | `b'o'` 0x6f  | any object with out-of-band buffers | see the `oob` module |
//!
//!   A pickle of protocol 2 or later always starts with the `PROTO` opcode
//!   `0x80`, so pickles need no tag byte of their own and are stored as
//!   `pickle.dumps` returned them; every other tag is ASCII, below `0x80`.
//!   The fast paths skip pickle for the commonest item types (pickle costs
//!   ~1 µs per call) and give other languages a format they can read and
//!   write without a pickle implementation.
//!
//!   Objects that hand pickle their data as `pickle.PickleBuffer`s (numpy
//!   arrays) are pickled with those buffers out of band: they
//!   go straight into the queue's memory and come back without a copy
//!   through pickle (the `oob` module).
//! * `"bytes"`: every item is a bytes-like object, stored verbatim, so a
//!   Rust `procq::RawQueue` reads and writes exactly the bytes Python sees.
//! * `"text"`: `str` in the wire format of Rust's `String` (see [`Codec`]).
//! * custom (`dumps=`/`loads=`): the record is whatever `dumps(obj)`
//!   returned, and `get` returns `loads(record)`.
//!
//! Large records are copied with the GIL released (see `LARGE`).

use crate::abi::{utf8, Exported};
use crate::oob::{self, Landed, Layout, TAG_OOB};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyMemoryView, PyString};

/// First byte of every pickle of protocol ≥ 2 (the `PROTO` opcode).
pub(crate) const TAG_PICKLE: u8 = 0x80;
/// A `bytes` item.
pub(crate) const TAG_BYTES: u8 = b'b';
/// A `str` item, UTF-8.
pub(crate) const TAG_STR: u8 = b's';
/// An `int` that fits in an `i64`.
pub(crate) const TAG_INT: u8 = b'i';
/// A `float`.
pub(crate) const TAG_FLOAT: u8 = b'f';
/// `None`.
pub(crate) const TAG_NONE: u8 = b'N';
/// `True`.
pub(crate) const TAG_TRUE: u8 = b'T';
/// `False`.
pub(crate) const TAG_FALSE: u8 = b'F';

/// Records at least this large are copied with the GIL released. Below it a
/// copy takes a few microseconds, less than giving the GIL away and taking it
/// back can cost when another thread wants it (up to the 5 ms switch
/// interval).
pub(crate) const LARGE: usize = 64 * 1024;

/// The pickle protocol used for items (5 is the newest, Python ≥ 3.8).
const PICKLE_PROTOCOL: u8 = 5;

/// How a queue turns Python objects into records.
#[derive(Debug)]
pub(crate) enum Codec {
    /// Any picklable object, with tagged fast paths (see the module docs).
    Pickle,
    /// Bytes-like objects only, stored verbatim.
    Bytes,
    /// `str` (or bytes) in the wire format of Rust's `String`/`Vec<u8>` and
    /// of the `procq` command: a LEB128 varint length, then the bytes.
    /// Items come back as `str` when they are valid UTF-8, else as `bytes`.
    Text,
    /// The user's serializer: the record is `dumps(obj)` (bytes-like), and
    /// an item is `loads(record)`.
    Custom {
        /// Object to bytes-like.
        dumps: Py<PyAny>,
        /// `bytes` to object.
        loads: Py<PyAny>,
    },
}

impl Codec {
    /// Parses the `codec=` argument.
    pub(crate) fn parse(s: &str) -> PyResult<Codec> {
        match s {
            "pickle" => Ok(Codec::Pickle),
            "bytes" => Ok(Codec::Bytes),
            "text" => Ok(Codec::Text),
            other => Err(PyValueError::new_err(format!(
                "codec must be 'pickle', 'bytes' or 'text', not {other:?}"
            ))),
        }
    }

    /// The codec for the `codec=`, `dumps=` and `loads=` arguments.
    pub(crate) fn new(
        codec: &str,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Codec> {
        match (dumps, loads) {
            (None, None) => Codec::parse(codec),
            (Some(dumps), Some(loads)) => {
                if codec != "pickle" {
                    return Err(PyValueError::new_err(
                        "dumps= and loads= replace the codec: give either them or codec=, not both",
                    ));
                }
                if !dumps.is_callable() || !loads.is_callable() {
                    return Err(PyTypeError::new_err("dumps= and loads= must be callables"));
                }
                Ok(Codec::Custom {
                    dumps: dumps.unbind(),
                    loads: loads.unbind(),
                })
            }
            _ => Err(PyTypeError::new_err(
                "give dumps= and loads= together (a queue's items must come back out)",
            )),
        }
    }

    /// The name given to `codec=` (`'custom'` for `dumps=`/`loads=`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Codec::Pickle => "pickle",
            Codec::Bytes => "bytes",
            Codec::Text => "text",
            Codec::Custom { .. } => "custom",
        }
    }

    /// The user's `dumps` and `loads`, if any.
    pub(crate) fn custom<'py>(
        &self,
        py: Python<'py>,
    ) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        match self {
            Codec::Custom { dumps, loads } => {
                Some((dumps.bind(py).clone(), loads.bind(py).clone()))
            }
            _ => None,
        }
    }
}

/// Where the body of an encoded item lives.
enum Body<'a, 'py> {
    /// No body (`None`, booleans, numbers live in the head).
    Empty,
    /// Borrowed from an immutable Python object (`bytes`, `str`) that the
    /// caller keeps alive for the whole call.
    Borrowed(&'a [u8]),
    /// A `bytes` object made for this item (a pickle, or a copy of a
    /// mutable buffer).
    Made(Bound<'py, PyBytes>),
    /// Any bytes-like object's memory, read in place (an out-of-band
    /// pickle buffer, or what a custom `dumps` returned).
    Exported(Exported<'py>),
}

/// One item, encoded: a short head (tag and fixed-size value) followed by
/// a body. The record is `head ++ body`; it is only concatenated when it is
/// copied, so a pickle or a `bytes_codec` item is never copied twice.
pub(crate) struct Encoded<'a, 'py> {
    /// Tag byte and, for numbers, their 8 bytes (or a length prefix).
    head: [u8; 10],
    /// How much of `head` is used.
    head_len: usize,
    /// A longer head, used instead of `head` when not empty: the header
    /// and pickle of an out-of-band record.
    long_head: Vec<u8>,
    /// The rest.
    body: Body<'a, 'py>,
    /// The buffers of an out-of-band record that has more than one (the
    /// body is then empty): laid out after the head by `oob::write`.
    scattered: Vec<Exported<'py>>,
}

impl<'a, 'py> Encoded<'a, 'py> {
    fn tagged(tag: u8, value: &[u8], body: Body<'a, 'py>) -> Self {
        let mut head = [0u8; 10];
        head[0] = tag;
        head[1..=value.len()].copy_from_slice(value);
        Encoded {
            head,
            head_len: 1 + value.len(),
            long_head: Vec::new(),
            body,
            scattered: Vec::new(),
        }
    }

    /// `body` behind its LEB128 length, as postcard writes a `String`.
    fn length_prefixed(body: Body<'a, 'py>) -> Self {
        let mut enc = Encoded::whole(body);
        let mut n = enc.body().len() as u64;
        while n >= 0x80 {
            enc.head[enc.head_len] = (n as u8) | 0x80;
            enc.head_len += 1;
            n >>= 7;
        }
        enc.head[enc.head_len] = n as u8;
        enc.head_len += 1;
        enc
    }

    fn whole(body: Body<'a, 'py>) -> Self {
        Encoded {
            head: [0; 10],
            head_len: 0,
            long_head: Vec::new(),
            body,
            scattered: Vec::new(),
        }
    }

    /// A pickle with out-of-band buffers (see the `oob` module), each
    /// copied from its object straight into the queue: a single buffer is
    /// the body; several are [`scattered`](Self::scattered).
    fn out_of_band(pickle: &[u8], mut buffers: Vec<Exported<'py>>) -> Self {
        let long_head = oob::head(pickle, &buffers);
        let (body, scattered) = if buffers.len() == 1 {
            (
                buffers.pop().map_or(Body::Empty, Body::Exported),
                Vec::new(),
            )
        } else {
            (Body::Empty, buffers)
        };
        Encoded {
            head: [0; 10],
            head_len: 0,
            long_head,
            body,
            scattered,
        }
    }

    /// The head and the buffers of an out-of-band record with several
    /// buffers, which `oob::write` lays out in place; `None` for every
    /// other item (its record is [`head`](Self::head) then
    /// [`body`](Self::body)).
    pub(crate) fn scattered(&self) -> Option<(&[u8], Vec<&[u8]>)> {
        (!self.scattered.is_empty()).then(|| {
            let buffers = self.scattered.iter().map(Exported::as_slice).collect();
            (self.head(), buffers)
        })
    }

    /// The leading bytes of the record (empty for pickles and raw bytes).
    pub(crate) fn head(&self) -> &[u8] {
        if self.long_head.is_empty() {
            &self.head[..self.head_len]
        } else {
            &self.long_head
        }
    }

    /// The trailing bytes of the record.
    pub(crate) fn body(&self) -> &[u8] {
        match &self.body {
            Body::Empty => &[],
            Body::Borrowed(b) => b,
            Body::Made(b) => b.as_bytes(),
            Body::Exported(b) => b.as_slice(),
        }
    }

    /// Length of the whole record.
    /// The whole record in one buffer (for the calls that take an item
    /// as one piece: a batch entry, an async put).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        match self.scattered() {
            Some((head, buffers)) => {
                let mut out = vec![0; oob::record_len(head, &buffers)];
                oob::write(&mut out, head, &buffers);
                out
            }
            None => [self.head(), self.body()].concat(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self.scattered() {
            Some((head, buffers)) => oob::record_len(head, &buffers),
            None => self.head().len() + self.body().len(),
        }
    }
}

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Encodes `obj` for a queue with `codec`. Raises at once (and puts
/// nothing) if the object cannot be encoded.
pub(crate) fn encode<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    codec: &Codec,
) -> PyResult<Encoded<'a, 'py>> {
    let py = obj.py();
    if let Codec::Custom { dumps, .. } = codec {
        let out = dumps.bind(py).call1((obj,))?;
        if let Ok(b) = out.cast::<PyBytes>() {
            return Ok(Encoded::whole(Body::Made(b.clone())));
        }
        return match Exported::new(&out) {
            Ok(view) => Ok(Encoded::whole(Body::Exported(view))),
            Err(_) => Err(PyTypeError::new_err(format!(
                "dumps= must return bytes or another bytes-like object, not {}",
                out.get_type().name()?
            ))),
        };
    }
    if let Codec::Bytes = codec {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Encoded::whole(Body::Borrowed(b.as_bytes())));
        }
        // Mutable buffers may change while the GIL is released: copy them.
        if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
            let copy = py
                .get_type::<PyBytes>()
                .call1((obj,))?
                .cast_into::<PyBytes>()?;
            return Ok(Encoded::whole(Body::Made(copy)));
        }
        return Err(PyTypeError::new_err(format!(
            "a queue with codec='bytes' takes bytes, bytearray or memoryview items, not {}",
            obj.get_type().name()?
        )));
    }
    if let Codec::Text = codec {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Encoded::length_prefixed(Body::Borrowed(utf8(s)?)));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Encoded::length_prefixed(Body::Borrowed(b.as_bytes())));
        }
        return Err(PyTypeError::new_err(format!(
            "a queue with codec='text' takes str or bytes items, not {}",
            obj.get_type().name()?
        )));
    }
    // Exact types only: a subclass may carry state that only pickle keeps.
    if obj.is_none() {
        return Ok(Encoded::tagged(TAG_NONE, &[], Body::Empty));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        let tag = if obj.is_truthy()? {
            TAG_TRUE
        } else {
            TAG_FALSE
        };
        return Ok(Encoded::tagged(tag, &[], Body::Empty));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Encoded::tagged(TAG_INT, &v.to_le_bytes(), Body::Empty));
        }
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Encoded::tagged(
            TAG_FLOAT,
            &f.value().to_le_bytes(),
            Body::Empty,
        ));
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(Encoded::tagged(
            TAG_BYTES,
            &[],
            Body::Borrowed(b.as_bytes()),
        ));
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        // A str with lone surrogates has no UTF-8 form: pickle keeps it.
        if let Ok(text) = utf8(s) {
            return Ok(Encoded::tagged(TAG_STR, &[], Body::Borrowed(text)));
        }
    }
    let dumps = PICKLE_DUMPS.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("pickle")?.getattr("dumps")?.unbind())
    })?;
    let (pickled, buffers) = oob::dumps(dumps.bind(py), obj, PICKLE_PROTOCOL)?;
    if buffers.is_empty() {
        return Ok(Encoded::whole(Body::Made(pickled)));
    }
    Ok(Encoded::out_of_band(pickled.as_bytes(), buffers))
}

/// A record turned into a Python object, except that a pickle is not yet
/// loaded: loading runs arbitrary Python code, which must not happen while
/// the queue's lock is held.
pub(crate) enum Built<'py> {
    /// The finished object.
    Done(Bound<'py, PyAny>),
    /// A pickle still to be loaded.
    Pickle(Bound<'py, PyBytes>),
    /// A pickle still to be loaded, with its out-of-band buffers.
    OutOfBand(Bound<'py, PyBytes>, Landed),
    /// A record for the user's `loads`.
    Custom(Bound<'py, PyBytes>),
}

/// A record taken out of the queue, when the taking must not make Python
/// objects (the GIL is not held): see [`land`].
pub(crate) enum Taken {
    /// The whole record, copied into the caller's buffer.
    Whole,
    /// An out-of-band record: its pickle is in the caller's buffer, its
    /// buffers in their own memory (no second copy later).
    OutOfBand(Landed),
    /// A record that cannot be an item (the error message).
    Bad(&'static str),
}

/// Copies `record` out of the queue without the GIL: the whole of it into
/// `into`, except that the buffers of an out-of-band pickle go straight to
/// the memory their objects will use.
pub(crate) fn land(record: &[u8], codec: &Codec, into: &mut Vec<u8>) -> Taken {
    into.clear();
    if matches!(codec, Codec::Pickle) && record.first() == Some(&TAG_OOB) {
        return match Layout::parse(record) {
            Ok(layout) => {
                into.extend_from_slice(&record[layout.pickle.clone()]);
                Taken::OutOfBand(Landed::copy(record, &layout))
            }
            Err(why) => Taken::Bad(why),
        };
    }
    into.extend_from_slice(record);
    Taken::Whole
}

/// Turns what [`land`] took into a [`Built`] item.
pub(crate) fn build_landed<'py>(
    py: Python<'py>,
    taken: Taken,
    landing: &[u8],
    codec: &Codec,
) -> PyResult<Built<'py>> {
    match taken {
        Taken::Whole => build(py, landing, codec, true),
        Taken::OutOfBand(landed) => Ok(Built::OutOfBand(PyBytes::new(py, landing), landed)),
        Taken::Bad(why) => Err(bad_record(why)),
    }
}

/// Why a record cannot be an item (raised as `ValueError`).
fn bad_record(why: &str) -> PyErr {
    PyValueError::new_err(format!(
        "queue item is not in procq's Python item format: {why}"
    ))
}

/// What the `bytes` object made from a record's payload is (see [`direct`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// The item itself (a top-level `bytes` item, or any `codec='bytes'` one).
    Item,
    /// A pickle still to be loaded.
    Pickle,
    /// A record for the user's `loads`.
    Custom,
}

impl Direct {
    /// The item built from `bytes`, the object made from the payload.
    pub(crate) fn built(self, bytes: Bound<'_, PyBytes>) -> Built<'_> {
        match self {
            Direct::Item => Built::Done(bytes.into_any()),
            Direct::Pickle => Built::Pickle(bytes),
            Direct::Custom => Built::Custom(bytes),
        }
    }
}

/// Whether `record` becomes one `bytes` object holding `record[start..]`
/// as it is, and what that object is: `Some((start, kind))`, else `None`.
/// Such a record can be copied from the queue straight into that object
/// (see `Core::get`); [`build`] makes the same objects.
pub(crate) fn direct(record: &[u8], codec: &Codec) -> Option<(usize, Direct)> {
    match codec {
        Codec::Bytes => Some((0, Direct::Item)),
        Codec::Custom { .. } => Some((0, Direct::Custom)),
        Codec::Text => None,
        Codec::Pickle => match record.first() {
            Some(&TAG_BYTES) => Some((1, Direct::Item)),
            Some(&TAG_PICKLE) => Some((0, Direct::Pickle)),
            _ => None,
        },
    }
}

/// A `bytes` object of `len` bytes whose contents are still to be
/// written, and where: write exactly `len` bytes there before any other
/// code can see the object (the GIL is not needed for that).
pub(crate) fn uninit_bytes(py: Python<'_>, len: usize) -> PyResult<(Bound<'_, PyBytes>, *mut u8)> {
    let n = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err("item too large for a bytes object"))?;
    // SAFETY: `PyBytes_FromStringAndSize(NULL, n)` returns a new reference to
    // a bytes object with `n` uninitialized bytes (or NULL with an exception
    // set, which `from_owned_ptr_or_err` turns into `Err`). It is a bytes
    // object, so the unchecked cast is sound. `PyBytes_AsString` on it returns
    // its buffer of exactly `n` bytes (plus a trailing NUL), which lives as
    // long as the object.
    unsafe {
        let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n);
        let obj = Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>();
        let buf = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>();
        Ok((obj, buf))
    }
}

/// Makes a `bytes` object. With `gil_free_copy`, large contents are copied
/// with the GIL released; that must not be used while the queue lock is held
/// (taking the GIL back could then wait on a thread that waits for the lock).
pub(crate) fn new_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    gil_free_copy: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    if !gil_free_copy || data.len() < LARGE {
        return Ok(PyBytes::new(py, data));
    }
    let (obj, buf) = uninit_bytes(py, data.len())?;
    // SAFETY: `buf` holds `data.len()` bytes (see `uninit_bytes`). No other
    // code can see the object before we return it, so writing the buffer
    // through a unique `&mut [u8]` while detached from the interpreter races
    // with nothing; the object (and so the buffer) is kept alive by `obj`.
    let dst = unsafe { std::slice::from_raw_parts_mut(buf, data.len()) };
    py.detach(|| dst.copy_from_slice(data));
    Ok(obj)
}

/// Turns one record into a Python object (pickles excepted, see [`Built`]).
///
/// Only makes objects that are not tracked by the garbage collector
/// (`bytes`, `str`, `int`, `float`), so no Python code can run: it is safe
/// to call while the queue's lock is held.
pub(crate) fn build<'py>(
    py: Python<'py>,
    record: &[u8],
    codec: &Codec,
    gil_free_copy: bool,
) -> PyResult<Built<'py>> {
    if let Codec::Custom { .. } = codec {
        return Ok(Built::Custom(new_bytes(py, record, gil_free_copy)?));
    }
    if let Codec::Bytes = codec {
        return Ok(Built::Done(
            new_bytes(py, record, gil_free_copy)?.into_any(),
        ));
    }
    if let Codec::Text = codec {
        let (len, n) = leb128(record).ok_or_else(|| bad_record("bad length prefix"))?;
        let rest = &record[n..];
        if rest.len() as u64 != len {
            return Err(bad_record("length prefix does not match the item"));
        }
        return Ok(Built::Done(match std::str::from_utf8(rest) {
            Ok(text) => PyString::new(py, text).into_any(),
            Err(_) => new_bytes(py, rest, gil_free_copy)?.into_any(),
        }));
    }
    let Some((&tag, rest)) = record.split_first() else {
        return Err(bad_record("empty record"));
    };
    let fixed8 = |rest: &[u8]| -> PyResult<[u8; 8]> {
        rest.try_into()
            .map_err(|_| bad_record("a number must have exactly 8 bytes"))
    };
    let obj = match tag {
        TAG_PICKLE => return Ok(Built::Pickle(new_bytes(py, record, gil_free_copy)?)),
        TAG_OOB => {
            let layout = Layout::parse(record).map_err(bad_record)?;
            let pickle = PyBytes::new(py, &record[layout.pickle.clone()]);
            let landed = if gil_free_copy && record.len() >= LARGE {
                py.detach(|| Landed::copy(record, &layout))
            } else {
                Landed::copy(record, &layout)
            };
            return Ok(Built::OutOfBand(pickle, landed));
        }
        TAG_BYTES => new_bytes(py, rest, gil_free_copy)?.into_any(),
        TAG_STR => {
            let text = std::str::from_utf8(rest).map_err(|_| bad_record("invalid UTF-8"))?;
            PyString::new(py, text).into_any()
        }
        TAG_INT => i64::from_le_bytes(fixed8(rest)?)
            .into_pyobject(py)?
            .into_any(),
        TAG_FLOAT => PyFloat::new(py, f64::from_le_bytes(fixed8(rest)?)).into_any(),
        TAG_NONE => py.None().into_bound(py),
        TAG_TRUE => PyBool::new(py, true).to_owned().into_any(),
        TAG_FALSE => PyBool::new(py, false).to_owned().into_any(),
        other => return Err(bad_record(&format!("unknown tag byte 0x{other:02x}"))),
    };
    Ok(Built::Done(obj))
}

/// Reads a LEB128 varint (at most 10 bytes): the value and its length.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Finishes a [`Built`] item: loads pickles (runs Python code: never
/// while the queue's lock is held).
pub(crate) fn finish<'py>(
    py: Python<'py>,
    built: Built<'py>,
    codec: &Codec,
) -> PyResult<Bound<'py, PyAny>> {
    let loads = || {
        PICKLE_LOADS
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("pickle")?.getattr("loads")?.unbind())
            })
            .map(|l| l.bind(py))
    };
    match built {
        Built::Done(obj) => Ok(obj),
        Built::Pickle(data) => loads()?.call1((data,)),
        Built::OutOfBand(data, landed) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("buffers", landed.frames(py)?)?;
            loads()?.call((data,), Some(&kwargs))
        }
        Built::Custom(data) => match codec {
            Codec::Custom { loads, .. } => loads.bind(py).call1((data,)),
            _ => Err(bad_record("a custom record on a queue without loads=")),
        },
    }
}
