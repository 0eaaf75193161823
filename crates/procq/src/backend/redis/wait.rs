//! Waiting: `BLPOP` on a wake-up token list, bounded by the caller's
//! deadline, the earliest lease expiry, and [`SAFETY_SLICE`]; a plain
//! unbounded queue's `BLMOVE` into a landing list (see
//! [`landing`](super::landing)), in slices of [`SHUTDOWN_SLICE`]; and
//! `close()`, which wakes this handle's blocked calls with `CLIENT UNBLOCK`.

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

/// Longest single wait of a plain unbounded queue's blocked get (its
/// `BLMOVE` watches the items list only, so it looks at the shutdown flag
/// after each slice): how late a shutdown may wake it.
pub(crate) const SHUTDOWN_SLICE: Duration = Duration::from_millis(250);

/// What a plain queue's `BLMOVE` step answered: the item it moved, if any,
/// and whether the queue is shut down.
pub(crate) type Landed = (Option<Vec<u8>>, bool);

/// The outcome of a blocking call that ran.
pub(crate) enum Blocked<R> {
    /// Its reply.
    Replied(R),
    /// A stop and continue of this process cut the read short: the reply
    /// was not read (the server may have acted).
    Interrupted,
}

/// What to wait for between script calls.
#[derive(Clone, Copy)]
pub(crate) enum Token {
    Avail,
    Space,
    Zero,
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
    /// else the reply (`Nil` when the slice ran out, or when a stop and
    /// continue of this process cut the wait short). A call that `stop`
    /// can end (an async call's, see [`calls`](super::calls)) waits at most
    /// [`STOPPABLE_SLICE`] at a time, so that it notices soon.
    pub(crate) fn blpop(
        &self,
        keys: &[&String],
        block: Block,
        hint_ms: i64,
        stop: &AtomicBool,
    ) -> Result<Option<Value>> {
        let r = self.blocking("BLPOP", block, hint_ms, SAFETY_SLICE, stop, |link, secs| {
            ::redis::cmd("BLPOP")
                .arg(keys)
                .arg(secs)
                .query::<Value>(link.as_dyn())
        })?;
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        Ok(r.map(|r| match r {
            // Only tokens are popped: a token lost with the reply costs at
            // most a spurious wait.
            Blocked::Replied(v) => v,
            Blocked::Interrupted => Value::Nil,
        }))
    }

    /// The blocking step of a plain unbounded queue's get, one round trip:
    /// deletes the landing's `spent` lists, moves the queue's head item into
    /// the fresh landing list `key` (`BLMOVE`, waiting at most
    /// [`SHUTDOWN_SLICE`] and the deadline), sets its expiry, and reads the
    /// shutdown flag. `None` if the deadline had passed; else the reply
    /// (the item if one moved, whether the queue is shut down), or
    /// [`Blocked::Interrupted`], the reply lost to a stop and continue of
    /// this process. An I/O error also means the reply was lost.
    pub(crate) fn blmove(
        &self,
        spent: &[String],
        key: &str,
        block: Block,
        stop: &AtomicBool,
    ) -> Result<Option<Blocked<Landed>>> {
        let ttl = super::landing::TTL.as_millis() as u64;
        let items = &self.keys[0];
        let meta = &self.keys[1];
        self.blocking("BLMOVE", block, -1, SHUTDOWN_SLICE, stop, |link, secs| {
            let mut del = ::redis::cmd("DEL");
            del.arg(spent);
            let mut mv = ::redis::cmd("BLMOVE");
            mv.arg(items).arg(key).arg("LEFT").arg("RIGHT").arg(secs);
            let mut exp = ::redis::cmd("PEXPIRE");
            exp.arg(key).arg(ttl);
            let mut flag = ::redis::cmd("HGET");
            flag.arg(meta).arg("shutdown");
            let mut cmds: Vec<&::redis::Cmd> = Vec::with_capacity(4);
            if !spent.is_empty() {
                cmds.push(&del);
            }
            cmds.extend([&mv, &exp, &flag]);
            let at = cmds.len() - 3;
            let v = link.pipeline(&cmds)?;
            let item = match v.get(at) {
                Some(Value::BulkString(b)) => Some(b.clone()),
                _ => None,
            };
            let shut = v.get(at + 2).map_or(0, super::conn::int) > 0;
            Ok((item, shut))
        })
    }

    /// Runs the blocking command `run` (given the link and its wait in
    /// seconds) for at most `hint_ms` (if not -1), the deadline, and
    /// `longest`, registered for [`close`](Self::close) to wake it. `None`
    /// if the deadline had passed (nothing ran). A call that `stop` can end
    /// waits at most [`STOPPABLE_SLICE`] at a time.
    fn blocking<R>(
        &self,
        op: &str,
        block: Block,
        hint_ms: i64,
        longest: Duration,
        stop: &AtomicBool,
        run: impl FnOnce(&mut super::conn::Link, f64) -> ::redis::RedisResult<R>,
    ) -> Result<Option<Blocked<R>>> {
        let deadline = match block {
            Block::No => return Ok(None),
            Block::Forever => None,
            Block::Until(d) => Some(d),
        };
        let now = Instant::now();
        let mut slice = if std::ptr::eq(stop, &NEVER) {
            longest
        } else {
            longest.min(STOPPABLE_SLICE)
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
        // Blocking commands take seconds with millisecond resolution; 0
        // would mean "forever".
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
            None
        } else {
            c.link.set_read_timeout(Some(slice + io_timeout));
            let r = run(&mut c.link, secs);
            c.link.set_read_timeout(Some(io_timeout));
            Some(r)
        };
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&b| b != id);
        match result {
            None => {
                self.pool.release(c);
                Err(Error::Closed)
            }
            Some(Ok(v)) => {
                self.pool.release(c);
                Ok(Some(Blocked::Replied(v)))
            }
            Some(Err(e)) if is_interrupted(&e) => {
                // Stopped and continued while waiting (a socket read with a
                // timeout fails with EINTR then). The reply may still come:
                // the connection is dropped rather than reused, since its
                // next command could read it.
                drop(c);
                Ok(Some(Blocked::Interrupted))
            }
            Some(Err(e)) => {
                if !is_broken(&e) {
                    self.pool.release(c);
                }
                Err(self.pool.map_err(op, e))
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
