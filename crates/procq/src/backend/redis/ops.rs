//! A handle's queue operations: `put` (numbered per producer, so a retry
//! after a lost reply is answered from the server's record), and `get` in
//! its three forms — a plain unbounded queue's `LPOP`/`BLPOP`, a bounded
//! queue's script, and a joinable queue's request (numbered per consumer,
//! repeated after a lost reply, its items read with a pipelined `LRANGE`) —
//! with the stash of items taken but not handed out.

use std::sync::atomic::{AtomicBool, Ordering};

use ::redis::Value;

use super::conn::int;
use super::deliveries::Id;
use super::wait::{self, Token};
use super::{
    deadline_of, hash_items, redact, RedisQueue, CHUNK, GET, NEVER, PUT, QSIZE, SHUTDOWN, UNGET,
};
use crate::block::Block;
use crate::error::{Error, Result};
use crate::kind::Kind;

impl RedisQueue {
    /// Puts `items` (already encoded), waiting for room as `block` allows.
    /// Returns how many went in (all of them unless the wait ran out).
    pub(crate) fn put(&self, items: &[&[u8]], block: Block) -> Result<usize> {
        self.put_until(items, block, &NEVER)
    }

    /// [`put`](Self::put) that gives up (with [`Error::Full`]) before its
    /// next attempt once `stop` is set: an async put whose future was
    /// dropped (see [`calls`](super::calls)).
    pub(crate) fn put_until(
        &self,
        items: &[&[u8]],
        block: Block,
        stop: &AtomicBool,
    ) -> Result<usize> {
        let mut done = 0;
        while done < items.len() {
            self.check_open()?;
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Full);
            }
            let chunk = &items[done..items.len().min(done + CHUNK)];
            let h = hash_items(chunk);
            let (producer, seq) = {
                let mut ids = self.ids();
                let seq = match ids.failed_put {
                    Some((s, fh)) if fh == h => s,
                    _ => {
                        ids.put_seq += 1;
                        ids.put_seq
                    }
                };
                (ids.producer.clone(), seq)
            };
            let joinable = u8::from(self.kind == Kind::Joinable);
            let r: Result<i64> = self.script("put", &PUT, deadline_of(block), |inv| {
                inv.arg(self.maxsize).arg(joinable).arg(&producer).arg(seq);
                for item in chunk {
                    inv.arg(*item);
                }
            });
            let n = {
                let mut ids = self.ids();
                match &r {
                    Err(_) => ids.failed_put = Some((seq, h)),
                    Ok(_) => ids.failed_put = None,
                }
                r?
            };
            if n > 0 {
                done += n as usize;
                continue;
            }
            if n < 0 {
                // Shut down: the chunks before this one are in and stay
                // for the consumers; the rest is refused.
                return Err(Error::ShutDown);
            }
            if !self.wait(Token::Space, block, -1, stop)? {
                if done == 0 {
                    return Err(Error::Full);
                }
                return Ok(done);
            }
        }
        Ok(done)
    }

    /// Takes up to `max` items (at least one), waiting for the first as
    /// `block` allows; `f` sees each item's bytes and says whether to take
    /// it. Returns how many were taken; on a joinable queue they count as
    /// handed out to the calling thread.
    ///
    /// A refused item ends the batch as on shared memory: a refused *first*
    /// item is removed all the same (and, on a joinable queue, acknowledged:
    /// the caller never saw it, so it can never call `task_done` for it); a
    /// refused later item and the rest are kept for the next call.
    pub(crate) fn pop(
        &self,
        max: usize,
        block: Block,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        let taken = self.take(max, block, &NEVER)?;
        Ok(self.deliver(taken, f))
    }

    /// Hands out items [`take`](Self::take) took, as [`pop`](Self::pop)
    /// says; returns how many were removed.
    pub(crate) fn deliver(
        &self,
        taken: Vec<(Id, Vec<u8>)>,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        let joinable = self.kind == Kind::Joinable;
        let mut handed = Vec::with_capacity(taken.len());
        let mut iter = taken.into_iter();
        while let Some((id, bytes)) = iter.next() {
            if f(&bytes) {
                handed.push(id);
                continue;
            }
            if handed.is_empty() {
                self.stash(iter);
                if joinable {
                    let _ = self.acknowledge(&[id]);
                }
                return 1;
            }
            self.stash(std::iter::once((id, bytes)).chain(iter));
            break;
        }
        let n = handed.len();
        if joinable {
            self.ids().hand_out(handed);
        }
        n
    }

    /// Takes up to `max` items with their ids (`(0, 0)` on a plain queue),
    /// stashed ones first; gives up (with [`Error::Empty`]) before its next
    /// attempt once `stop` is set.
    pub(crate) fn take(
        &self,
        max: usize,
        block: Block,
        stop: &AtomicBool,
    ) -> Result<Vec<(Id, Vec<u8>)>> {
        self.check_open()?;
        {
            let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
            if !stash.is_empty() {
                let n = max.max(1).min(stash.len());
                return Ok(stash.drain(..n).collect());
            }
        }
        let max = max.clamp(1, CHUNK);
        if self.kind == Kind::Queue && self.maxsize == 0 {
            let items = self.get_plain(max, block, stop)?;
            return Ok(items.into_iter().map(|i| ((0, 0), i)).collect());
        }
        let joinable = self.kind == Kind::Joinable;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Empty);
            }
            let (consumer, seq) = {
                let mut ids = self.ids();
                let seq = if joinable { ids.next_get() } else { 0 };
                (ids.consumer.clone(), seq)
            };
            let reply = if joinable {
                self.get_joinable(&consumer, max, seq, block)
            } else {
                self.get_script(max, block)
            };
            let reply: Vec<Value> = match reply {
                Ok(r) => r,
                Err(e) => {
                    if joinable && matches!(e, Error::Io { .. }) {
                        // It may have run: the next get asks for its items.
                        self.ids().get_lost(seq);
                    }
                    return Err(e);
                }
            };
            let status = reply.first().map_or(0, int);
            let hint = reply.get(1).map_or(-1, int);
            if status == 2 {
                return Err(Error::ShutDown);
            }
            if status == 1 {
                // {1, hint, items} on a plain queue; {1, -1, count, items}
                // on a joinable one, whose items are (seq, index).
                let at = if joinable { 3 } else { 2 };
                if joinable {
                    self.start_heartbeat(&consumer);
                }
                let items = match reply.into_iter().nth(at) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                return Ok(items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    })
                    .enumerate()
                    .map(|(i, b)| ((seq, i as u64), b))
                    .collect());
            }
            if !self.wait(Token::Avail, block, hint, stop)? {
                return Err(Error::Empty);
            }
        }
    }

    /// The get script on a plain queue: `{1, hint, items}`, `{0, hint}` when
    /// empty, `{2, -1}` when shut down and drained.
    fn get_script(&self, max: usize, block: Block) -> Result<Vec<Value>> {
        self.script("get", &GET, deadline_of(block), |inv| {
            inv.arg(max)
                .arg(0)
                .arg("")
                .arg(0)
                .arg(self.maxsize)
                .arg(0)
                .arg(1);
        })
    }

    /// [`get_script`](Self::get_script)'s answer as items, or
    /// [`Error::Empty`] / [`Error::ShutDown`].
    fn get_plain_script(&self, max: usize) -> Result<Vec<Vec<u8>>> {
        let reply = self.get_script(max, Block::No)?;
        match reply.first().map_or(0, int) {
            2 => Err(Error::ShutDown),
            1 => match reply.into_iter().nth(2) {
                Some(Value::Array(items)) => Ok(items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    })
                    .collect()),
                _ => Err(Error::Empty),
            },
            _ => Err(Error::Empty),
        }
    }

    /// One joinable get request, in one round trip: the script moves the
    /// items to the request's own list and answers `{status, hint, count}`;
    /// a native `LRANGE` of that list, pipelined after it,
    /// brings the items (so that they never pass through Lua, see
    /// `common.lua`). Returns the script's answer with the items appended
    /// as one array, like the plain queue's reply.
    fn get_joinable(
        &self,
        consumer: &str,
        max: usize,
        seq: u64,
        block: Block,
    ) -> Result<Vec<Value>> {
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(GET.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            eval.arg(k);
        }
        eval.arg(&self.prefix)
            .arg(max)
            .arg(1)
            .arg(consumer)
            .arg(lease_ms)
            .arg(self.maxsize)
            .arg(seq)
            .arg(0);
        let mut lrange = ::redis::cmd("LRANGE");
        lrange
            .arg(format!("{}:held:{consumer}:{seq}", self.prefix))
            .arg(0)
            .arg(-1);
        let (meta, items) = self.pool.with_conn("get", deadline_of(block), |c| {
            match c.link.pair(&eval, &lrange) {
                Err(e)
                    if e.kind()
                        == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
                {
                    // A server restarted (or flushed its scripts) since.
                    GET.load(c.link.as_dyn())?;
                    c.link.pair(&eval, &lrange)
                }
                other => other,
            }
        })?;
        let mut reply = match meta {
            Value::Array(v) => v,
            _ => Vec::new(),
        };
        if reply.first().map_or(0, int) == 1 {
            reply.truncate(3);
            reply.push(items);
        }
        Ok(reply)
    }

    /// `get` on a plain unbounded queue: no lease, no space to signal, so it
    /// is `LPOP` or a `BLPOP` on the items list itself, one round trip like a
    /// hand-written Redis list queue. The `BLPOP` also watches the
    /// shutdown's tokens; woken by one, or finding the queue empty without
    /// waiting, it asks the get script, which takes what remains or says
    /// that the queue is shut down, in one atomic step (an `LPOP` that found
    /// nothing and a flag read after it could miss an item put in between).
    fn get_plain(&self, max: usize, block: Block, stop: &AtomicBool) -> Result<Vec<Vec<u8>>> {
        let key = &self.keys[0];
        let mut look = max > 1 || matches!(block, Block::No);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Empty);
            }
            if look {
                let v: Option<Vec<Vec<u8>>> = self.pool.with_conn("LPOP", None, |c| {
                    ::redis::cmd("LPOP")
                        .arg(key)
                        .arg(max)
                        .query(c.link.as_dyn())
                })?;
                if let Some(items) = v.filter(|v| !v.is_empty()) {
                    return Ok(items);
                }
                if matches!(block, Block::No) {
                    return self.get_plain_script(max);
                }
            }
            look = max > 1;
            let Some(v) = self.blpop(&[key, &self.keys[7]], block, -1, stop)? else {
                return Err(Error::Empty);
            };
            match wait::popped(&v) {
                Some((k, item)) if k == key.as_bytes() => {
                    let mut items = vec![item];
                    if max > 1 {
                        // Woken by a producer: take what else it put,
                        // so that a batch consumer that caught up does
                        // not go on one item per round trip.
                        if let Ok(Some(more)) = self.pool.with_conn("LPOP", None, |c| {
                            ::redis::cmd("LPOP")
                                .arg(key)
                                .arg(max - 1)
                                .query::<Option<Vec<Vec<u8>>>>(c.link.as_dyn())
                        }) {
                            items.extend(more);
                        }
                    }
                    return Ok(items);
                }
                // A shutdown's token: what remains, or the end.
                Some(_) => match self.get_plain_script(max) {
                    Err(Error::Empty) => {}
                    other => return other,
                },
                // The slice ran out (or a stop signal cut the wait short:
                // the reply may still come, and the connection's next
                // reply read skips it, so no script runs before the next
                // BLPOP).
                None => {}
            }
        }
    }

    /// Gives back items a get took for a caller that is gone (an async get
    /// dropped meanwhile): a plain queue's go back to the head of the queue
    /// (`unget.lua`), a joinable queue's stay in flight, kept by this
    /// handle for its next get (and redelivered to others once its lease
    /// runs out if none comes). Kept by the handle too if the server cannot
    /// be reached.
    pub(crate) fn give_back(&self, items: Vec<(Id, Vec<u8>)>) {
        if items.is_empty() {
            return;
        }
        if self.kind != Kind::Joinable {
            let r: Result<i64> = self.script("unget", &UNGET, None, |inv| {
                for (_, item) in &items {
                    inv.arg(item.as_slice());
                }
            });
            if r.is_ok() {
                return;
            }
        }
        self.stash(items);
    }

    /// Keeps items taken but not handed out (they come first next time).
    pub(super) fn stash(&self, items: impl IntoIterator<Item = (Id, Vec<u8>)>) {
        let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
        for (i, item) in items.into_iter().enumerate() {
            stash.insert(i, item);
        }
    }

    /// Shuts the queue down for every client (see `shutdown.lua`): puts
    /// fail from now on, gets once what remains is handed out (or, if
    /// `immediate`, dropped), and every blocked caller wakes.
    /// [`Error::NotFound`] if the queue was removed.
    pub(crate) fn shutdown(&self, immediate: bool) -> Result<()> {
        self.check_open()?;
        let dropped: Option<i64> = self.script("shutdown", &SHUTDOWN, None, |inv| {
            inv.arg(u8::from(immediate));
        })?;
        match dropped {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(redact(&self.url))),
        }
    }

    /// Whether the queue was shut down (`false` if the server cannot say).
    pub(crate) fn is_shutdown(&self) -> bool {
        let key = &self.keys[1];
        self.pool
            .with_conn("HGET", None, |c| {
                ::redis::cmd("HGET")
                    .arg(key)
                    .arg("shutdown")
                    .query::<Option<i64>>(c.link.as_dyn())
            })
            .is_ok_and(|v| v.unwrap_or(0) > 0)
    }

    /// Items in the queue (in-flight items not included).
    pub(crate) fn qsize(&self) -> Result<usize> {
        if self.kind == Kind::Joinable {
            return self.script("qsize", &QSIZE, None, |_| {});
        }
        let key = &self.keys[0];
        self.pool.with_conn("LLEN", None, |c| {
            ::redis::cmd("LLEN")
                .arg(key)
                .query::<usize>(c.link.as_dyn())
        })
    }
}
