//! The methods that carry items — `put`, `get`, their `_nowait` forms and
//! the batch calls of `Queue` and `SimpleQueue` — with CPython's vectorcall
//! convention (`METH_FASTCALL | METH_KEYWORDS`), which the 3.9 stable ABI
//! lacks.
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
//! [`install`] replaces what `#[pymethods]` would make with method
//! descriptors (`PyDescr_NewMethod`, stable ABI) of the functions in
//! [`METHODS`] (`JoinableQueue` inherits those of `Queue`). Their
//! signatures, errors and docstrings are those of the standard library's
//! methods (procq's own for the batch calls), down to reading `block` by
//! its truth value: `get(0)` does not wait.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyString, PyType};

use crate::classes::{Queue, SimpleQueue};
use crate::core::Core;
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

/// A parameter of one of the methods here (an index into [`NAMES`]).
#[derive(Clone, Copy)]
enum Param {
    Obj,
    Items,
    Block,
    Timeout,
    MaxItems,
    MaxMessagesToGet,
}
use Param::*;

/// The names of the [`Param`]s, in their order.
const NAMES: [&str; 6] = [
    "obj",
    "items",
    "block",
    "timeout",
    "max_items",
    "max_messages_to_get",
];

/// [`NAMES`] as interned `str` objects: a keyword written in the caller's
/// source is interned too, the same object, found by its address.
static INTERNED: PyOnceLock<[Py<PyString>; 6]> = PyOnceLock::new();

/// The most parameters a method here has.
const MAX_PARAMS: usize = 4;

/// The arguments of one call, in the order of the method's parameters
/// (`None` for one not given, and past the last parameter).
type Args<'py> = [Option<Bound<'py, PyAny>>; MAX_PARAMS];

/// What a method returns.
type Out<'py> = PyResult<Bound<'py, PyAny>>;

/// The class a method is defined on.
#[derive(Clone, Copy)]
enum Class {
    Queue,
    SimpleQueue,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Queue => "Queue",
            Class::SimpleQueue => "SimpleQueue",
        }
    }

    /// The queue of `slf`, an instance of this class (or a subclass).
    #[inline(always)]
    fn core<'a>(self, slf: &'a Bound<'_, PyAny>) -> PyResult<&'a Core> {
        Ok(match self {
            Class::Queue => &slf.cast::<Queue>()?.get().core,
            Class::SimpleQueue => &slf.cast::<SimpleQueue>()?.get().core,
        })
    }
}

/// One method: where it goes, its parameters and what it does. All its
/// parameters may come by position or keyword except the last
/// `keyword_only`; the first `required` must be given.
struct Spec {
    class: Class,
    name: &'static CStr,
    /// Starts with the text signature (`name($self, /, ...)\n--\n\n`) that
    /// `inspect.signature` reads.
    doc: &'static CStr,
    params: &'static [Param],
    required: usize,
    keyword_only: usize,
    run: Run,
}

/// A method's body, given its arguments (see [`Args`]).
type Run = for<'py> fn(&Core, Python<'py>, Args<'py>) -> Out<'py>;

impl Spec {
    const fn new(class: Class, (name, doc): Named, params: &'static [Param], run: Run) -> Spec {
        Spec {
            class,
            name,
            doc,
            params,
            required: 0,
            keyword_only: 0,
            run,
        }
    }

    const fn required(self, n: usize) -> Spec {
        Spec {
            required: n,
            ..self
        }
    }

    const fn keyword_only(self, n: usize) -> Spec {
        Spec {
            keyword_only: n,
            ..self
        }
    }
}

const COUNT: usize = 12;

/// Every method on the fast convention.
const METHODS: [Spec; COUNT] = {
    use Class::{Queue as Q, SimpleQueue as S};
    [
        Spec::new(Q, PUT, &[Obj, Block, Timeout], put).required(1),
        Spec::new(Q, GET, &[Block, Timeout], get),
        Spec::new(Q, PUT_NOWAIT, &[Obj], put_nowait).required(1),
        Spec::new(Q, GET_NOWAIT, &[], get_nowait),
        Spec::new(Q, PUT_MANY, &[Items, Block, Timeout], put_many).required(1),
        Spec::new(Q, PUT_MANY_NOWAIT, &[Items], put_many_nowait).required(1),
        Spec::new(
            Q,
            GET_MANY,
            &[MaxItems, Block, Timeout, MaxMessagesToGet],
            get_many,
        )
        .keyword_only(1),
        Spec::new(
            Q,
            GET_MANY_NOWAIT,
            &[MaxItems, MaxMessagesToGet],
            get_many_nowait,
        )
        .keyword_only(1),
        Spec::new(S, SIMPLE_PUT, &[Obj], simple_put).required(1),
        Spec::new(S, SIMPLE_GET, &[Timeout], simple_get),
        Spec::new(S, SIMPLE_PUT_MANY, &[Items], simple_put_many).required(1),
        Spec::new(
            S,
            SIMPLE_GET_MANY,
            &[MaxItems, Timeout, MaxMessagesToGet],
            simple_get_many,
        )
        .keyword_only(1),
    ]
};

// Every method's arguments fit in `Args`, with the required ones first.
const _: () = {
    let mut i = 0;
    while i < COUNT {
        let spec = &METHODS[i];
        assert!(spec.params.len() <= MAX_PARAMS);
        assert!(spec.required + spec.keyword_only <= spec.params.len());
        i += 1;
    }
};

/// [`fast`] for each entry of [`METHODS`]: CPython hands a method nothing
/// that says which one it is, so each needs a C function of its own.
const ENTRIES: [FastWithKeywords; COUNT] = [
    fast::<0>, fast::<1>, fast::<2>, fast::<3>, fast::<4>, fast::<5>, fast::<6>, fast::<7>,
    fast::<8>, fast::<9>, fast::<10>, fast::<11>,
];

// The methods. `parse` has checked that the required arguments are there;
// each is inlined into its `fast`.

#[inline(always)]
fn put<'py>(q: &Core, py: Python<'py>, [obj, block, timeout, _]: Args<'py>) -> Out<'py> {
    let wait = wait_of(block, timeout)?;
    none(py, q.put(py, &given(obj), wait))
}

#[inline(always)]
fn get<'py>(q: &Core, py: Python<'py>, [block, timeout, ..]: Args<'py>) -> Out<'py> {
    q.get(py, wait_of(block, timeout)?)
}

#[inline(always)]
fn put_nowait<'py>(q: &Core, py: Python<'py>, [obj, ..]: Args<'py>) -> Out<'py> {
    none(py, q.put(py, &given(obj), Wait::Now))
}

#[inline(always)]
fn get_nowait<'py>(q: &Core, py: Python<'py>, _: Args<'py>) -> Out<'py> {
    q.get(py, Wait::Now)
}

#[inline(always)]
fn put_many<'py>(q: &Core, py: Python<'py>, [items, block, timeout, _]: Args<'py>) -> Out<'py> {
    let wait = wait_of(block, timeout)?;
    none(py, q.put_many(py, &given(items), wait))
}

#[inline(always)]
fn put_many_nowait<'py>(q: &Core, py: Python<'py>, [items, ..]: Args<'py>) -> Out<'py> {
    none(py, q.put_many(py, &given(items), Wait::Now))
}

#[inline(always)]
fn get_many<'py>(q: &Core, py: Python<'py>, [n, block, timeout, alias]: Args<'py>) -> Out<'py> {
    take(q, py, n, alias, wait_of(block, timeout))
}

#[inline(always)]
fn get_many_nowait<'py>(q: &Core, py: Python<'py>, [n, alias, ..]: Args<'py>) -> Out<'py> {
    take(q, py, n, alias, Ok(Wait::Now))
}

#[inline(always)]
fn simple_put<'py>(q: &Core, py: Python<'py>, [obj, ..]: Args<'py>) -> Out<'py> {
    none(py, q.put(py, &given(obj), Wait::Until(None)))
}

#[inline(always)]
fn simple_get<'py>(q: &Core, py: Python<'py>, [timeout, ..]: Args<'py>) -> Out<'py> {
    q.get(py, wait_of(None, timeout)?)
}

#[inline(always)]
fn simple_put_many<'py>(q: &Core, py: Python<'py>, [items, ..]: Args<'py>) -> Out<'py> {
    none(py, q.put_many(py, &given(items), Wait::Until(None)))
}

#[inline(always)]
fn simple_get_many<'py>(q: &Core, py: Python<'py>, [n, timeout, alias, _]: Args<'py>) -> Out<'py> {
    take(q, py, n, alias, wait_of(None, timeout))
}

/// `get_many` with its count as given (`max_items`, or its alias
/// `max_messages_to_get`).
fn take<'py>(
    q: &Core,
    py: Python<'py>,
    n: Option<Bound<'py, PyAny>>,
    alias: Option<Bound<'py, PyAny>>,
    wait: PyResult<Wait>,
) -> Out<'py> {
    let wait = wait?;
    Ok(q.get_many(py, max_items_of(n, alias)?, wait)?.into_any())
}

/// A required argument (`parse` made sure it is there).
fn given(arg: Option<Bound<'_, PyAny>>) -> Bound<'_, PyAny> {
    arg.expect("parse checks required arguments")
}

/// `None`, the result of a method that returns nothing, or its error.
fn none(py: Python<'_>, done: PyResult<()>) -> Out<'_> {
    done.map(|()| py.None().into_bound(py))
}

/// Puts the methods of [`METHODS`] on the classes `Queue` and
/// `SimpleQueue`.
pub(crate) fn install(queue: &Bound<'_, PyType>, simple: &Bound<'_, PyType>) -> PyResult<()> {
    for (spec, meth) in METHODS.iter().zip(ENTRIES) {
        let ty = match spec.class {
            Class::Queue => queue,
            Class::SimpleQueue => simple,
        };
        add(ty, spec, meth)?;
    }
    Ok(())
}

fn add(ty: &Bound<'_, PyType>, spec: &Spec, meth: FastWithKeywords) -> PyResult<()> {
    // The descriptor keeps a pointer to its definition: it lives as long as
    // the process (one per method and import of the module).
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: spec.name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY: C stores every kind of method in this one pointer
            // type and calls it by the signature `ml_flags` names, as
            // CPython's own modules do with `(PyCFunction)(void(*)(void))`.
            PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(meth) },
        },
        ml_flags: METH_FASTCALL | METH_KEYWORDS,
        ml_doc: spec.doc.as_ptr(),
    }));
    let py = ty.py();
    // SAFETY: `ty` is a live type object, `def` lives forever; the result is
    // a new reference or NULL with an exception set.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))? };
    ty.setattr(spec.name.to_str().expect("ASCII"), descr)
}

/// The C function of `METHODS[I]`: parses the arguments by its [`Spec`]
/// and runs it. Its error is raised, a panic becomes `PanicException`
/// (unwinding into C would abort the interpreter).
///
/// # Safety
/// Called by CPython as the `METH_FASTCALL | METH_KEYWORDS` method that
/// [`add`] made of it: attached to the interpreter, `slf` an instance of
/// the class, `args` holding `nargs` positional arguments and one value
/// per entry of `kwnames`.
unsafe extern "C" fn fast<const I: usize>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let spec: &Spec = const { &METHODS[I] };
    // SAFETY: CPython calls methods while attached.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `slf` is the live object the method was called on.
        let slf = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let core = spec.class.core(&slf)?;
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
        (spec.run)(core, py, parse(py, spec, all, nargs, kwnames)?)
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

/// The arguments of one call of the method `spec`: `args` holds `nargs`
/// positional values, then one per name in `kwnames`. Inlined into each
/// method's [`fast`], where its `spec` is a constant.
#[inline(always)]
fn parse<'py>(
    py: Python<'py>,
    spec: &Spec,
    args: &[*mut ffi::PyObject],
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Args<'py>> {
    let method = || format!("{}.{}()", spec.class.name(), spec.name.to_string_lossy());
    let mut out: Args<'py> = std::array::from_fn(|_| None);
    let positional = spec.params.len() - spec.keyword_only;
    if nargs > positional {
        return Err(PyTypeError::new_err(format!(
            "{} takes at most {positional} positional arguments ({nargs} given)",
            method()
        )));
    }
    for (slot, &p) in out.iter_mut().zip(&args[..nargs]) {
        // SAFETY: the caller's arguments are live for the whole call.
        *slot = Some(unsafe { Bound::from_borrowed_ptr(py, p) });
    }
    if args.len() > nargs {
        let interned = INTERNED.get_or_init(py, || NAMES.map(|n| PyString::intern(py, n).unbind()));
        for (i, &value) in args[nargs..].iter().enumerate() {
            // SAFETY: `kwnames` is a tuple of str with one name per value
            // after the positional ones (`fast` sized `args` by it).
            let key = unsafe {
                Bound::from_borrowed_ptr(py, ffi::PyTuple_GetItem(kwnames, i as ffi::Py_ssize_t))
            };
            // Others than interned names (`**kwargs` built at run time)
            // compare by value.
            let name = match interned.iter().position(|n| n.as_ptr() == key.as_ptr()) {
                Some(at) => Some(at),
                None => interned.iter().position(|n| key.eq(n).unwrap_or(false)),
            };
            let at = name.and_then(|n| spec.params.iter().position(|&p| p as usize == n));
            let Some(at) = at else {
                return Err(PyTypeError::new_err(format!(
                    "{} got an unexpected keyword argument {}",
                    method(),
                    key.repr()?
                )));
            };
            if out[at].is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{} got multiple values for argument '{}'",
                    method(),
                    NAMES[spec.params[at] as usize]
                )));
            }
            // SAFETY: as for the positional arguments.
            out[at] = Some(unsafe { Bound::from_borrowed_ptr(py, value) });
        }
    }
    if let Some(missing) = out[..spec.required].iter().position(Option::is_none) {
        return Err(PyTypeError::new_err(format!(
            "{} missing required argument '{}'",
            method(),
            NAMES[spec.params[missing] as usize]
        )));
    }
    Ok(out)
}

/// `block=` and `timeout=` as `multiprocessing.Queue` reads them: `block`
/// by its truth value (`get(0)` does not wait), `timeout` a number or None
/// (checked even when `block` is false).
fn wait_of(block: Option<Bound<'_, PyAny>>, timeout: Option<Bound<'_, PyAny>>) -> PyResult<Wait> {
    let block = match block {
        None => true,
        Some(b) => b.is_truthy()?,
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

/// `get_many`'s count: `max_items` or its faster-fifo name
/// `max_messages_to_get`, at most one of them; `None` means no limit.
/// A `bool` is refused: faster-fifo's first positional argument is `block`,
/// and `get_many(True)` would otherwise quietly mean "one item".
fn max_items_of<'py>(
    max_items: Option<Bound<'py, PyAny>>,
    max_messages_to_get: Option<Bound<'py, PyAny>>,
) -> PyResult<usize> {
    // An explicit None is the default, as PyO3 read `Option<...>` before.
    let not_none = |a: Option<Bound<'py, PyAny>>| a.filter(|a| !a.is_none());
    let arg = match (not_none(max_items), not_none(max_messages_to_get)) {
        (Some(_), Some(_)) => {
            return Err(PyTypeError::new_err(
                "give max_items or max_messages_to_get (its faster-fifo name), not both",
            ))
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Ok(usize::MAX),
    };
    if arg.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "get_many's first argument is max_items (an int), not a bool: write \
             get_many(block=..., timeout=...) for faster-fifo's get_many(block, timeout)",
        ));
    }
    let n: i64 = arg.extract()?;
    match usize::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "max_items must be at least 1, not {n}"
        ))),
    }
}

/// A `TypeError` about argument `name`, as PyO3 words it.
fn named(py: Python<'_>, name: &str, e: PyErr) -> PyErr {
    if e.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(format!("argument '{name}': {}", e.value(py)))
    } else {
        e
    }
}

/// A method's name and docstring. The docstring starts with the text
/// signature that `inspect.signature` reads (the standard library's, for
/// the methods it has).
type Named = (&'static CStr, &'static CStr);

const PUT: Named = (
    c"put",
    c"put($self, /, obj, block=True, timeout=None)
--

Put ``obj`` into the queue.

If ``block`` is true and ``timeout`` is None (the default), block
until a free slot is available. If ``timeout`` is a positive number,
block at most ``timeout`` seconds and raise ``queue.Full`` if no slot
became free. Otherwise (``block`` false, or ``timeout`` <= 0) put the
item if a slot is free right now, else raise ``queue.Full``.

The item is in shared memory when ``put`` returns. An object that
cannot be pickled raises here and leaves the queue unchanged.",
);

const GET: Named = (
    c"get",
    c"get($self, /, block=True, timeout=None)
--

Remove and return an item from the queue.

If ``block`` is true and ``timeout`` is None (the default), block
until an item is available. If ``timeout`` is a positive number, block
at most ``timeout`` seconds and raise ``queue.Empty`` if no item
arrived. Otherwise (``block`` false, or ``timeout`` <= 0) return an
item if one is available right now, else raise ``queue.Empty``.",
);

const PUT_NOWAIT: Named = (
    c"put_nowait",
    c"put_nowait($self, /, obj)
--

Equivalent to ``put(obj, False)``.",
);

const GET_NOWAIT: Named = (
    c"get_nowait",
    c"get_nowait($self, /)
--

Equivalent to ``get(False)``.",
);

const PUT_MANY: Named = (
    c"put_many",
    c"put_many($self, /, items, block=True, timeout=None)
--

Put every item of the iterable ``items``, in order, under as few lock
acquisitions as room allows (much faster than one ``put`` each for
small items). All items are pickled before any is put: one that
cannot be pickled raises and nothing is put. ``block`` and
``timeout`` are as for ``put``; if time runs out, ``queue.Full`` is
raised and only the leading items it names were put.",
);

const PUT_MANY_NOWAIT: Named = (
    c"put_many_nowait",
    c"put_many_nowait($self, /, items)
--

Equivalent to ``put_many(items, False)``: puts the leading items
there is room for now, then raises ``queue.Full`` if any are left.",
);

const GET_MANY: Named = (
    c"get_many",
    c"get_many($self, /, max_items=None, block=True, timeout=None, *, max_messages_to_get=None)
--

Remove and return a list of up to ``max_items`` items (at least one;
default: all there are now).

Waits for the first item as ``get`` does (``block``, ``timeout``,
``queue.Empty``), then takes whatever else is there, up to
``max_items``, without waiting. ``max_messages_to_get=`` is
faster-fifo's name for ``max_items``.",
);

const GET_MANY_NOWAIT: Named = (
    c"get_many_nowait",
    c"get_many_nowait($self, /, max_items=None, *, max_messages_to_get=None)
--

Equivalent to ``get_many(max_items, False)``.",
);

const SIMPLE_PUT: Named = (
    c"put",
    c"put($self, /, obj)
--

Put an item into the queue (never blocks: the queue is unbounded).",
);

const SIMPLE_GET: Named = (
    c"get",
    c"get($self, /, timeout=None)
--

Remove and return an item from the queue, blocking until there is
one.

procq extension: with a ``timeout`` (seconds), raise ``queue.Empty``
if no item arrived in time.",
);

const SIMPLE_PUT_MANY: Named = (
    c"put_many",
    c"put_many($self, /, items)
--

Put every item of ``items``, in order (see ``Queue.put_many``).",
);

const SIMPLE_GET_MANY: Named = (
    c"get_many",
    c"get_many($self, /, max_items=None, timeout=None, *, max_messages_to_get=None)
--

Remove and return up to ``max_items`` items (see ``Queue.get_many``).",
);
