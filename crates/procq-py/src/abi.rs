//! The few CPython functions procq calls beyond the 3.9 limited API.
//!
//! The wheel is built once for the stable ABI of CPython 3.9 (`abi3-py39`)
//! and runs on every CPython from 3.9 up. `PyUnicode_AsUTF8AndSize` joined
//! the *stable ABI* only in 3.10, but every CPython 3 exports it with the
//! same signature; PyO3 hides it under `abi3-py39`, so it is declared here
//! by hand. The test suite runs the wheel on the oldest and the newest
//! CPython it supports (scripts/test.d/20-python.sh).

use std::ffi::c_char;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
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
