//! `Queue.put` and `Queue.get` with CPython's vectorcall convention
//! (`METH_FASTCALL | METH_KEYWORDS`), which the 3.9 stable ABI lacks.
//!
//! PyO3 builds the methods of an `abi3-py39` module as
//! `METH_VARARGS | METH_KEYWORDS`: for every call the interpreter packs the
//! arguments into a new tuple and the keyword arguments into a new dict,
//! and PyO3 walks that dict. `q.get(timeout=30)` spent more time there than
//! in the queue: 880 ns per call against 440 ns for `q.get()` (Python 3.13,
//! one process). `METH_FASTCALL | METH_KEYWORDS` hands the method the
//! caller's argument array and a tuple of keyword names, with nothing
//! allocated. It joined the stable ABI only in 3.10, but every CPython from
//! 3.7 runs it with the same flag values and the same function signature
//! (`Include/methodobject.h`); the same reasoning as for the functions in
//! the `abi` module, and the suite runs the wheel on 3.9 and 3.13.
//!
//! [`install`] replaces the `put` and `get` that `#[pymethods]` would make
//! with method descriptors (`PyDescr_NewMethod`, stable ABI) of the
//! functions below; `JoinableQueue` inherits them. Their signatures,
//! errors and docstrings are those of the standard library's methods.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

use crate::classes::Queue;
use crate::wait::Wait;

/// `Include/methodobject.h` (3.7 and later).
const METH_FASTCALL: c_int = 0x0080;
const METH_KEYWORDS: c_int = 0x0002;

/// `PyCFunctionFastWithKeywords`, hidden by PyO3 under `abi3-py39`.
type FastWithKeywords = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

const PUT_DOC: &CStr = c"put($self, /, obj, block=True, timeout=None)
--

Put ``obj`` into the queue.

If ``block`` is true and ``timeout`` is None (the default), block
until a free slot is available. If ``timeout`` is a positive number,
block at most ``timeout`` seconds and raise ``queue.Full`` if no slot
became free. Otherwise (``block`` false, or ``timeout`` <= 0) put the
item if a slot is free right now, else raise ``queue.Full``.

The item is in shared memory when ``put`` returns. An object that
cannot be pickled raises here and leaves the queue unchanged.";

const GET_DOC: &CStr = c"get($self, /, block=True, timeout=None)
--

Remove and return an item from the queue.

If ``block`` is true and ``timeout`` is None (the default), block
until an item is available. If ``timeout`` is a positive number, block
at most ``timeout`` seconds and raise ``queue.Empty`` if no item
arrived. Otherwise (``block`` false, or ``timeout`` <= 0) return an
item if one is available right now, else raise ``queue.Empty``.";

/// Puts `put` and `get` on the class `Queue` (see the module docs).
pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    add(ty, c"put", put as FastWithKeywords, PUT_DOC)?;
    add(ty, c"get", get as FastWithKeywords, GET_DOC)
}

fn add(
    ty: &Bound<'_, PyType>,
    name: &'static CStr,
    meth: FastWithKeywords,
    doc: &'static CStr,
) -> PyResult<()> {
    // The descriptor keeps a pointer to its definition: it lives as long as
    // the process (two per import of the module).
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY: C stores every kind of method in this one pointer
            // type and calls it by the signature `ml_flags` names, as
            // CPython's own modules do with `(PyCFunction)(void(*)(void))`.
            PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(meth) },
        },
        ml_flags: METH_FASTCALL | METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    let py = ty.py();
    // SAFETY: `ty` is a live type object, `def` lives forever; the result is
    // a new reference or NULL with an exception set.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))? };
    ty.setattr(name.to_str().expect("ASCII"), descr)
}

/// The arguments of one call: `N` parameters that may come by position or
/// by keyword (`names`, interned), the first `required` of them mandatory.
fn parse<'py, const N: usize>(
    py: Python<'py>,
    method: &str,
    names: [&Bound<'py, PyString>; N],
    required: usize,
    args: &[*mut ffi::PyObject],
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Option<Bound<'py, PyAny>>; N]> {
    let mut out: [Option<Bound<'py, PyAny>>; N] = std::array::from_fn(|_| None);
    if nargs > N {
        return Err(PyTypeError::new_err(format!(
            "Queue.{method}() takes at most {N} positional arguments ({nargs} given)"
        )));
    }
    for (slot, &p) in out.iter_mut().zip(&args[..nargs]) {
        // SAFETY: the caller's arguments are live for the whole call.
        *slot = Some(unsafe { Bound::from_borrowed_ptr(py, p) });
    }
    for (i, &value) in args[nargs..].iter().enumerate() {
        // SAFETY: `kwnames` is a tuple of str with one name per value after
        // the positional ones (`entry` sized `args` by it).
        let key = unsafe {
            Bound::from_borrowed_ptr(py, ffi::PyTuple_GetItem(kwnames, i as ffi::Py_ssize_t))
        };
        // Names written in the caller's source are interned, as ours are:
        // the same object. Others (`**kwargs` built at run time) compare
        // by value.
        let at = match names.iter().position(|n| n.as_ptr() == key.as_ptr()) {
            Some(at) => Some(at),
            None => names.iter().position(|n| key.eq(n).unwrap_or(false)),
        };
        let Some(at) = at else {
            return Err(PyTypeError::new_err(format!(
                "Queue.{method}() got an unexpected keyword argument {}",
                key.repr()?
            )));
        };
        if out[at].is_some() {
            return Err(PyTypeError::new_err(format!(
                "Queue.{method}() got multiple values for argument '{}'",
                names[at]
            )));
        }
        // SAFETY: as for the positional arguments.
        out[at] = Some(unsafe { Bound::from_borrowed_ptr(py, value) });
    }
    if let Some(missing) = out[..required].iter().position(Option::is_none) {
        return Err(PyTypeError::new_err(format!(
            "Queue.{method}() missing required argument '{}'",
            names[missing]
        )));
    }
    Ok(out)
}

/// `block=` and `timeout=` as `Queue.put`/`Queue.get` read them (the types
/// `#[pymethods]` extracted before: a `bool`, a number or None).
fn wait_of(block: Option<Bound<'_, PyAny>>, timeout: Option<Bound<'_, PyAny>>) -> PyResult<Wait> {
    let block = match block {
        None => true,
        Some(b) => b.extract::<bool>().map_err(|e| named(b.py(), "block", e))?,
    };
    let timeout = match timeout {
        Some(t) if !t.is_none() => Some(
            t.extract::<f64>()
                .map_err(|e| named(t.py(), "timeout", e))?,
        ),
        _ => None,
    };
    Wait::new(block, timeout)
}

/// A `TypeError` about argument `name`, as PyO3 words it.
fn named(py: Python<'_>, name: &str, e: PyErr) -> PyErr {
    if e.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(format!("argument '{name}': {}", e.value(py)))
    } else {
        e
    }
}

/// Runs `body` for a C entry point: its error is raised, a panic becomes
/// `PanicException` (unwinding into C would abort the interpreter).
///
/// # Safety
/// The caller is a CPython method call: attached to the interpreter, with
/// `args` holding `nargs` positional arguments and one value per entry of
/// `kwnames`.
unsafe fn entry(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    body: impl for<'py> FnOnce(
        &Queue,
        Python<'py>,
        &[*mut ffi::PyObject],
        usize,
    ) -> PyResult<Bound<'py, PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods while attached.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `slf` is the live object the method was called on.
        let slf = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let queue = slf.cast::<Queue>()?;
        let nargs = usize::try_from(nargs).map_err(|_| PyValueError::new_err("nargs"))?;
        let kw = if kwnames.is_null() {
            0
        } else {
            // SAFETY: a live tuple (see `parse`).
            usize::try_from(unsafe { ffi::PyTuple_Size(kwnames) }).unwrap_or(0)
        };
        // SAFETY: CPython passes `nargs` positional values followed by one
        // per keyword name, live for the whole call.
        let all = unsafe { std::slice::from_raw_parts(args, nargs + kw) };
        body(queue.get(), py, all, nargs)
    }));
    let err = match result {
        Ok(Ok(obj)) => return obj.into_ptr(),
        Ok(Err(e)) => e,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in procq".into());
            PanicException::new_err(what)
        }
    };
    err.restore(py);
    std::ptr::null_mut()
}

unsafe extern "C" fn put(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by CPython as a METH_FASTCALL | METH_KEYWORDS method.
    unsafe {
        entry(slf, args, nargs, kwnames, |queue, py, all, nargs| {
            let names = [
                intern!(py, "obj"),
                intern!(py, "block"),
                intern!(py, "timeout"),
            ];
            let [obj, block, timeout] = parse(py, "put", names, 1, all, nargs, kwnames)?;
            let obj = obj.expect("required");
            queue.core.put(py, &obj, wait_of(block, timeout)?)?;
            Ok(py.None().into_bound(py))
        })
    }
}

unsafe extern "C" fn get(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by CPython as a METH_FASTCALL | METH_KEYWORDS method.
    unsafe {
        entry(slf, args, nargs, kwnames, |queue, py, all, nargs| {
            let names = [intern!(py, "block"), intern!(py, "timeout")];
            let [block, timeout] = parse(py, "get", names, 0, all, nargs, kwnames)?;
            queue.core.get(py, wait_of(block, timeout)?)
        })
    }
}
