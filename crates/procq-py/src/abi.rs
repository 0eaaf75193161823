//! The few CPython functions procq calls beyond the 3.9 limited API, and
//! the buffer protocol on both sides: reading any bytes-like object in
//! place ([`Exported`]), and handing Rust memory to Python without a copy
//! (`Frame`).
//!
//! The wheel is built once for the stable ABI of CPython 3.9 (`abi3-py39`)
//! and runs on every CPython from 3.9 up. Three functions procq needs joined
//! the *stable ABI* only later — `PyUnicode_AsUTF8AndSize` in 3.10,
//! `PyObject_GetBuffer` and `PyBuffer_Release` (with the `Py_buffer` struct)
//! in 3.11 — but every CPython 3 exports them, with the same signatures and
//! the same struct layout (the buffer protocol's `Py_buffer` has not changed
//! since 3.3; 3.11 added it to the stable ABI as it was). PyO3 hides them
//! under `abi3-py39`, so they are declared here by hand. Buffer slots in a
//! type made with `PyType_FromSpec` (what `Frame` needs) are accepted
//! from 3.9 on. The test suite runs the wheel on the oldest and the newest
//! CPython it supports (scripts/test.d/20-python.sh).

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyMemoryError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};

use crate::slab::Slab;

/// CPython's `Py_buffer` (`Include/pybuffer.h`), unchanged since 3.3.
#[repr(C)]
struct PyBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// Request flags of `PyObject_GetBuffer` (`Include/pybuffer.h`).
const PYBUF_SIMPLE: c_int = 0;
const PYBUF_FORMAT: c_int = 0x0004;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;

/// Slot ids of the buffer procs (`Include/typeslots.h`; renumbered only
/// from 3.15, whose old ids stay valid).
const PY_BF_GETBUFFER: c_int = 1;
const PY_BF_RELEASEBUFFER: c_int = 2;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBuffer);
}

/// The UTF-8 form of `s`, kept by the str itself (no copy for ASCII, one
/// cached encoding otherwise). Fails for a str with lone surrogates.
pub(crate) fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a [u8]> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live str (we hold the GIL through `Bound`). On
    // success CPython returns a pointer to `len` bytes of UTF-8 that the str
    // owns and keeps until it is freed; the returned slice borrows `s`, so it
    // cannot outlive it. On failure it returns NULL with an exception set,
    // which `PyErr::fetch` takes (and clears).
    unsafe {
        let p = PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
        if p.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        Ok(std::slice::from_raw_parts(p.cast::<u8>(), len as usize))
    }
}

/// A contiguous bytes-like object's memory, read in place: a buffer export
/// held until drop, which keeps the memory alive and stops the exporter from
/// resizing it (a `bytearray` refuses to resize while exported).
///
/// The content is not frozen: another thread may still write into a
/// mutable buffer (a numpy array, a `bytearray`) while `put` copies it, as
/// with any object shared between threads. Do not change an object while
/// another thread is putting it.
pub(crate) struct Exported<'py> {
    view: PyBuffer,
    /// Ties the export to the interpreter: released with the GIL held.
    _py: std::marker::PhantomData<Python<'py>>,
}

impl<'py> Exported<'py> {
    /// Exports `obj`'s memory as plain contiguous bytes
    /// (`BufferError` if it is not contiguous).
    pub(crate) fn new(obj: &Bound<'py, PyAny>) -> PyResult<Exported<'py>> {
        let mut view = PyBuffer {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        };
        // SAFETY: `obj` is live and the GIL is held; `view` is a valid,
        // writable `Py_buffer`. A simple request asks for C-contiguous
        // bytes with no shape or strides; on failure nothing needs releasing.
        if unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut view, PYBUF_SIMPLE) } != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Exported {
            view,
            _py: std::marker::PhantomData,
        })
    }

    /// The exported bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.view.len <= 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a successful simple request exports `len` contiguous bytes
        // at `buf`, valid until `PyBuffer_Release` (in `drop`), which the
        // borrow of `self` outlives.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.view.len as usize) }
    }
}

impl Drop for Exported<'_> {
    fn drop(&mut self) {
        // SAFETY: `view` was filled by a successful `PyObject_GetBuffer` and
        // is released once. `Exported<'py>` is not `Send` (raw pointers), so
        // it drops on the thread that holds the interpreter, with the GIL
        // held: it is only made and dropped in code holding `Python<'py>`,
        // never inside `Python::detach`.
        unsafe { PyBuffer_Release(&mut self.view) }
    }
}

/// The C layout of a `procq._procq.Frame` object.
#[repr(C)]
struct FrameObject {
    ob_base: ffi::PyObject,
    /// First byte of this frame's part of the slab.
    data: *mut u8,
    /// Its length (`Py_ssize_t`, so that `shape` can point at it).
    len: ffi::Py_ssize_t,
    /// A strong count of the slab (`Arc::into_raw`), dropped in dealloc.
    slab: *const Slab,
}

static FRAME_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The type `procq._procq.Frame`: a writable bytes-like object over part of
/// a [`Slab`], made by [`frame`]. It only exports its memory (for
/// `memoryview`, `numpy.frombuffer`, `bytes`, ...); several frames share one
/// slab, which is freed with the last of them.
fn frame_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    FRAME_TYPE
        .get_or_try_init(py, || {
            let mut slots = [
                ffi::PyType_Slot {
                    slot: PY_BF_GETBUFFER,
                    pfunc: frame_getbuffer as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: PY_BF_RELEASEBUFFER,
                    pfunc: frame_releasebuffer as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_dealloc,
                    pfunc: frame_dealloc as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_doc,
                    pfunc:
                        c"Memory of an item got from a procq queue (an out-of-band pickle buffer)."
                            .as_ptr() as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: 0,
                    pfunc: ptr::null_mut(),
                },
            ];
            let mut spec = ffi::PyType_Spec {
                // Static: a heap type keeps pointing at its spec's name.
                name: c"procq._procq.Frame".as_ptr(),
                basicsize: std::mem::size_of::<FrameObject>() as c_int,
                itemsize: 0,
                flags: ffi::Py_TPFLAGS_DEFAULT as c_uint,
                slots: slots.as_mut_ptr(),
            };
            // SAFETY: the spec and its slots are valid for the call (CPython
            // copies the slots; the name is a 'static C string). The result
            // is a new reference to a type object, or NULL with an exception.
            unsafe {
                let ty = ffi::PyType_FromSpec(&mut spec);
                Ok::<_, PyErr>(
                    Bound::from_owned_ptr_or_err(py, ty)?
                        .cast_into_unchecked::<PyType>()
                        .unbind(),
                )
            }
        })
        .map(|t| t.bind(py))
}

/// A `Frame` over `slab[start..start + len]`.
pub(crate) fn frame<'py>(
    py: Python<'py>,
    slab: &Arc<Slab>,
    start: usize,
    len: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let end = start.checked_add(len);
    if end.is_none_or(|end| end > slab.len()) || ffi::Py_ssize_t::try_from(len).is_err() {
        return Err(PyBufferError::new_err("frame outside its slab"));
    }
    let ty = frame_type(py)?;
    // SAFETY: `PyType_GenericAlloc` returns a new, zeroed instance of the
    // heap type `ty` (holding a reference to it) or NULL with an exception.
    // The instance is a `FrameObject` (basicsize above); its fields are set
    // before anyone else can see it. `start + len` is within the slab, so
    // `data` points into it; the `Arc` count moved into `slab` keeps the
    // memory alive until `frame_dealloc` gives it back.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(ty.as_ptr().cast(), 0);
        if obj.is_null() {
            return Err(PyErr::take(py).unwrap_or_else(|| PyMemoryError::new_err("Frame")));
        }
        let f = obj.cast::<FrameObject>();
        (*f).data = slab.as_ptr().add(start);
        (*f).len = len as ffi::Py_ssize_t;
        (*f).slab = Arc::into_raw(Arc::clone(slab));
        Ok(Bound::from_owned_ptr(py, obj))
    }
}

/// `bf_getbuffer`: exports the frame's bytes, writable (every request is
/// granted), as `PyBuffer_FillInfo` would.
unsafe extern "C" fn frame_getbuffer(
    exporter: *mut ffi::PyObject,
    view: *mut PyBuffer,
    flags: c_int,
) -> c_int {
    if view.is_null() {
        // CPython never passes NULL; refuse rather than crash.
        return -1;
    }
    let f = exporter.cast::<FrameObject>();
    // SAFETY: CPython calls this slot with the GIL held, a live Frame as
    // `exporter` and a writable `Py_buffer` as `view`. The view keeps a
    // reference to the frame (`obj`), so `data`, and `len` (which `shape`
    // points at), outlive the export; `strides` points into the view itself,
    // as `PyBuffer_FillInfo` does.
    unsafe {
        let v = &mut *view;
        v.buf = (*f).data.cast();
        ffi::Py_INCREF(exporter);
        v.obj = exporter;
        v.len = (*f).len;
        v.itemsize = 1;
        v.readonly = 0;
        v.ndim = 1;
        v.format = if flags & PYBUF_FORMAT != 0 {
            c"B".as_ptr() as *mut c_char
        } else {
            ptr::null_mut()
        };
        v.shape = if flags & PYBUF_ND != 0 {
            ptr::addr_of_mut!((*f).len)
        } else {
            ptr::null_mut()
        };
        v.strides = if flags & PYBUF_STRIDES == PYBUF_STRIDES {
            ptr::addr_of_mut!(v.itemsize)
        } else {
            ptr::null_mut()
        };
        v.suboffsets = ptr::null_mut();
        v.internal = ptr::null_mut();
    }
    0
}

/// `bf_releasebuffer`: nothing to undo (the view's reference to the frame
/// is dropped by CPython).
unsafe extern "C" fn frame_releasebuffer(_exporter: *mut ffi::PyObject, _view: *mut PyBuffer) {}

/// `tp_dealloc`: gives back the frame's count of its slab, then frees the
/// object and drops its reference to the (heap) type.
unsafe extern "C" fn frame_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once, with the GIL held, on a Frame whose refcount
    // reached zero. `slab` is the count taken in `frame` (or null if the
    // allocation was never finished). `tp_free` is the type's deallocator
    // for its instances; a heap type's instances own a reference to it.
    unsafe {
        let f = obj.cast::<FrameObject>();
        let slab = (*f).slab;
        if !slab.is_null() {
            drop(Arc::from_raw(slab));
        }
        let ty = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(ty, ffi::Py_tp_free);
        if !free.is_null() {
            let free: ffi::freefunc = std::mem::transmute(free);
            free(obj.cast());
        }
        ffi::Py_DECREF(ty.cast());
    }
}
