//! `procq._procq`: the Python extension behind `import procq`.
//!
//! Three classes with the standard library's names and signatures —
//! `Queue`, `JoinableQueue` (a subclass of `Queue`) and `SimpleQueue` —
//! over procq's shared-memory [`procq::RawQueue`]. Items are encoded as
//! described in the `item` module (pickle protocol 5 with tagged fast paths
//! for `bytes`, `str`, `int`, `float`, `None` and `bool`, and out-of-band
//! buffers for numpy arrays; or raw bytes, text, or the user's `dumps`).
//!
//! # The GIL
//!
//! A call that has to wait, or that copies a large item (≥ 64 KiB), runs
//! with the GIL released (`Python::detach`), so other Python threads keep
//! running. Waits are cut into slices of `wait::SLICE`; between slices the call
//! takes the GIL back and runs signal handlers, so Ctrl-C interrupts a
//! blocked `get()` as it does the standard library's.
//!
//! Small items take a fast path that keeps the GIL: one attempt that does
//! not wait. Giving the GIL away costs little by itself, but taking it back
//! waits up to the interpreter's switch interval (5 ms) whenever another
//! thread is busy, which would make every small `put` and `get` in a
//! multi-threaded program that slow. The fast path never waits for anything
//! but the queue's lock, which other processes hold only while they copy one
//! item's bytes.
//!
//! Lock order: code that holds the queue's lock never waits for the GIL.
//! The fast path takes the lock while holding the GIL; a detached call
//! takes the lock without the GIL and finishes with it before taking the
//! GIL back. So no thread can hold the lock while waiting for the GIL.
//!
//! # Pickling a queue
//!
//! `pickle.dumps(q)` gives the queue's kind, name and codec (with `dumps`,
//! `loads` and `trusted`); unpickling
//! opens the queue by name. A queue can therefore go to another process by
//! any route — `Process` arguments under every start method, `Pool`
//! initializer arguments, another queue — and it stays alive as long as some
//! process holds a handle to it.
//!
//! # Modules
//!
//! * `classes`: the three Python classes and the module's functions;
//! * `core`: `Core`, one handle and every operation the classes share;
//! * `item`: how an object becomes the bytes of one record, and back;
//! * `oob`: records of pickles with out-of-band buffers (numpy arrays);
//! * `slab`: the aligned memory such buffers land in, reused once freed;
//! * `abi`: the buffer protocol and the CPython calls used beyond the 3.9
//!   limited API (the wheel is abi3);
//! * `wait`: `block`/`timeout`, and blocking calls in slices;
//! * `aio`: `get_async`, `put_async`, `join_async` (asyncio coroutines);
//! * `errors`: procq's errors as the standard library's exceptions;
//! * `fastcall`: the methods that carry items (`put`, `get`, `put_nowait`,
//!   the batch calls) in CPython's vectorcall convention (no argument
//!   tuple or dict per call).

use pyo3::prelude::*;

mod abi;
mod aio;
mod classes;
mod core;
mod errors;
mod fastcall;
mod item;
mod oob;
mod slab;
mod wait;

use classes::{_rebuild, collect_garbage, JoinableQueue, Queue, SimpleQueue};
use item::LARGE;

/// The compiled part of `procq` (import `procq`, not this module).
#[pymodule]
fn _procq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Queue>()?;
    m.add_class::<SimpleQueue>()?;
    let py = m.py();
    fastcall::install(&py.get_type::<Queue>(), &py.get_type::<SimpleQueue>())?;
    m.add_class::<JoinableQueue>()?;
    m.add_function(wrap_pyfunction!(_rebuild, m)?)?;
    m.add_function(wrap_pyfunction!(collect_garbage, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LARGE_ITEM_BYTES", LARGE)?;
    Ok(())
}
