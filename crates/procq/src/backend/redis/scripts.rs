//! The Lua scripts of the Redis backend, each prefixed with the helpers
//! of `common.lua`; loaded into the server on first use (`EVALSHA`, and
//! `SCRIPT LOAD` again after a `NOSCRIPT` reply).
//!
//! A leaf module, so that the connection layer (`conn.rs`, which re-sends
//! an acknowledgement after the server lost its scripts) and the queue
//! above it can both name a script without a cycle.

use std::sync::LazyLock;

use ::redis::Script;

/// A script, prefixed with the shared helpers.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}
/// Opens (and maybe creates) a queue, checking its kind and bound.
pub(super) static OPEN: LazyLock<Script> = script!("open.lua");
/// Puts items, taking room tokens on a bounded queue.
pub(super) static PUT: LazyLock<Script> = script!("put.lua");
/// Gets items into a landing list or, on a joinable queue, in flight.
pub(super) static GET: LazyLock<Script> = script!("get.lua");
/// Acknowledges items by number (`task_done`).
pub(super) static TASK_DONE: LazyLock<Script> = script!("task_done.lua");
/// Reads the unfinished count for `join`.
pub(super) static JOIN: LazyLock<Script> = script!("join.lua");
/// The number of items queued.
pub(super) static QSIZE: LazyLock<Script> = script!("qsize.lua");
/// Shuts the queue down and wakes its blocked callers.
pub(super) static SHUTDOWN: LazyLock<Script> = script!("shutdown.lua");
/// Puts back at the head the items a cancelled async get took.
pub(super) static UNGET: LazyLock<Script> = script!("unget.lua");
