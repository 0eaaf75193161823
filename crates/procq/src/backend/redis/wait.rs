//! Waiting without polling: `BLPOP` on a wake-up token list (or on a plain
//! queue's items), bounded by the caller's deadline, the earliest lease
//! expiry, and [`SAFETY_SLICE`]; and `close()`, which wakes this handle's
//! blocked calls with `CLIENT UNBLOCK`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::redis::Value;

use super::conn::{is_broken, is_interrupted};
use super::{RedisQueue, NEVER};
use crate::block::Block;
use crate::error::{Error, Result};

/// Longest single blocking wait: a backstop against a wake-up token lost
/// with a broken connection, not the wake-up path.
pub(crate) const SAFETY_SLICE: Duration = Duration::from_secs(2);

/// Longest single wait of a call that can be stopped (an async call whose
/// future may be dropped): how long a cancelled call may keep its thread
/// and connection.
pub(crate) const STOPPABLE_SLICE: Duration = Duration::from_millis(250);

/// What to wait for between script calls.
#[derive(Clone, Copy)]
pub(crate) enum Token {
    Avail,
    Space,
    Zero,
}

/// The key and value of a `BLPOP` reply (`[key, value]`), if it popped one.
pub(crate) fn popped(v: &Value) -> Option<(&[u8], Vec<u8>)> {
    match v {
        Value::Array(kv) => match (kv.first(), kv.get(1)) {
            (Some(Value::BulkString(k)), Some(Value::BulkString(b))) => {
                Some((k.as_slice(), b.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

impl RedisQueue {
    /// Waits for a token on `which` for at most `hint_ms` (a lease expiry,
    /// -1 if none), the deadline, and [`SAFETY_SLICE`]. Returns `false` if
    /// the deadline has passed.
    ///
    /// Getters and putters also wake on a shutdown's tokens (see
    /// `common.lua`): their next script call tells them.
    pub(crate) fn wait(
        &self,
        which: Token,
        block: Block,
        hint_ms: i64,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let k = &self.keys;
        let keys: &[&String] = match which {
            Token::Avail => &[&k[2], &k[7]],
            Token::Space => &[&k[3], &k[7]],
            Token::Zero => &[&k[5]],
        };
        Ok(self.blpop(keys, block, hint_ms, stop)?.is_some())
    }

    /// `BLPOP keys…` for at most `hint_ms` (if not -1), the deadline, and
    /// [`SAFETY_SLICE`]; `None` if the deadline had passed (nothing waited),
    /// else the reply (`Nil` when the slice ran out). A call that `stop`
    /// can end (an async call's, see [`calls`](super::calls)) waits at most
    /// [`STOPPABLE_SLICE`] at a time, so that it notices soon.
    pub(crate) fn blpop(
        &self,
        keys: &[&String],
        block: Block,
        hint_ms: i64,
        stop: &AtomicBool,
    ) -> Result<Option<Value>> {
        let deadline = match block {
            Block::No => return Ok(None),
            Block::Forever => None,
            Block::Until(d) => Some(d),
        };
        let now = Instant::now();
        let mut slice = if std::ptr::eq(stop, &NEVER) {
            SAFETY_SLICE
        } else {
            STOPPABLE_SLICE
        };
        if let Some(d) = deadline {
            if d <= now {
                return Ok(None);
            }
            slice = slice.min(d - now);
        }
        if hint_ms >= 0 {
            // Wake just after the lease runs out, so that reap finds it due.
            slice = slice.min(Duration::from_millis(hint_ms as u64 + 5));
        }
        // BLPOP takes seconds with millisecond resolution; 0 would mean "forever".
        let secs = (slice.as_millis().max(1) as f64) / 1000.0;
        let io_timeout = self.pool.target.io_timeout;
        let mut c = self.pool.conn(deadline)?;
        if c.client_id.is_none() {
            let mut r = c
                .link
                .on_node(::redis::cmd("CLIENT").arg("ID"), self.pool.slot);
            if r.as_ref().is_err_and(is_interrupted) {
                r = c
                    .link
                    .on_node(::redis::cmd("CLIENT").arg("ID"), self.pool.slot);
            }
            match r {
                Ok(Value::Int(id)) => c.client_id = Some(id),
                Ok(_) => c.client_id = Some(0),
                Err(e) => {
                    if !is_broken(&e) {
                        self.pool.release(c);
                    }
                    return Err(self.pool.map_err("CLIENT ID", e));
                }
            }
        }
        let id = c.client_id.unwrap_or(0);
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        let result = if self.closed.load(Ordering::SeqCst) {
            Ok(Value::Nil)
        } else {
            c.link.set_read_timeout(Some(slice + io_timeout));
            let r = ::redis::cmd("BLPOP")
                .arg(keys)
                .arg(secs)
                .query::<Value>(c.link.as_dyn());
            c.link.set_read_timeout(Some(io_timeout));
            r
        };
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&b| b != id);
        match result {
            Ok(v) => {
                self.pool.release(c);
                if self.closed.load(Ordering::Relaxed) {
                    // Do not lose an item popped just as the handle closed.
                    if let Some((key, item)) = popped(&v) {
                        if key == self.keys[0].as_bytes() {
                            self.stash(std::iter::once(((0, 0), item)));
                        }
                    }
                    return Err(Error::Closed);
                }
                Ok(Some(v))
            }
            Err(e) if is_interrupted(&e) => {
                // Stopped and continued while waiting (a socket read with a
                // timeout fails with EINTR then): a spurious wake-up. The
                // reply may still come: the connection is dropped rather
                // than reused, since its next command could read it. (A
                // plain queue's item popped meanwhile is lost with it;
                // docs/redis.md, "Shutdown".)
                drop(c);
                Ok(Some(Value::Nil))
            }
            Err(e) => {
                if !is_broken(&e) {
                    self.pool.release(c);
                }
                Err(self.pool.map_err("BLPOP", e))
            }
        }
    }

    /// Closes this handle and wakes its blocked calls (`CLIENT UNBLOCK`).
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let ids: Vec<i64> = self
            .blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if ids.is_empty() {
            return;
        }
        let slot = self.pool.slot;
        let _ = self.pool.with_conn("CLIENT UNBLOCK", None, |c| {
            for id in &ids {
                c.link
                    .on_node(::redis::cmd("CLIENT").arg("UNBLOCK").arg(*id), slot)?;
            }
            Ok(())
        });
    }
}
