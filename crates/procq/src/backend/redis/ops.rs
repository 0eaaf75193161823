//! A handle's queue operations: `put` (numbered per producer, so a retry
//! after a lost reply is answered from the server's record), and `get` in
//! its three forms — a plain unbounded queue's `BLMOVE` into a landing list
//! (or the script, for batches), a bounded queue's script (both move items
//! into a landing list, so a lost reply loses nothing: see
//! [`landing`](super::landing)), and a joinable queue's request (numbered
//! per consumer, repeated after a lost reply, its items read with a
//! pipelined `LRANGE`) — with the stash of items taken but not handed out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ::redis::{Cmd, Value};

use super::conn::{int, is_broken, is_interrupted, is_transient};
use super::deliveries::Id;
use super::landing::{self, Landing};
use super::wait::{Blocked, Token};
use super::{
    deadline_of, hash_items, redact, RedisQueue, CHUNK, GET, NEVER, PUT, QSIZE, SHUTDOWN, UNGET,
};
use crate::block::Block;
use crate::error::{Error, Result};
use crate::kind::Kind;

/// What one move of a plain queue's get found.
enum Moved {
    /// Items, now handed out.
    Items(Vec<Vec<u8>>),
    /// Nothing: the queue is empty (the hint: ms until a lease runs out, -1
    /// if none).
    Empty(i64),
    /// Nothing, and the queue is shut down.
    ShutDown,
}

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
        if self.kind == Kind::Queue {
            let mut landing = self.landings().acquire(&self.prefix);
            let r = self.take_plain(&mut landing, max, block, stop);
            self.landings().release(landing);
            return r.map(|items| items.into_iter().map(|i| ((0, 0), i)).collect());
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Empty);
            }
            let (consumer, seq) = {
                let mut ids = self.ids();
                (ids.consumer.clone(), ids.next_get())
            };
            let reply: Vec<Value> = match self.get_joinable(&consumer, max, seq, block) {
                Ok(r) => r,
                Err(e) => {
                    if matches!(e, Error::Io { .. }) {
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
                // {1, -1, count, items}, the items named (seq, index).
                self.start_heartbeat(&consumer);
                let items = match reply.into_iter().nth(3) {
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

    /// A plain queue's get (see [`landing`](super::landing)): the items a
    /// lost reply left in `landing` first, then a move of up to `max`
    /// items, waiting as `block` allows.
    fn take_plain(
        &self,
        landing: &mut Landing,
        max: usize,
        block: Block,
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<u8>>> {
        let items = self.recover(landing, max)?;
        if !items.is_empty() {
            return Ok(items);
        }
        if self.maxsize == 0 {
            return self.get_plain(landing, max, block, stop);
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Empty);
            }
            match self.move_batch(landing, max, block)? {
                Moved::Items(items) => return Ok(items),
                Moved::ShutDown => return Err(Error::ShutDown),
                Moved::Empty(hint) => {
                    if !self.wait(Token::Avail, block, hint, stop)? {
                        return Err(Error::Empty);
                    }
                }
            }
        }
    }

    /// The items of `landing`'s move whose reply was lost (none if it never
    /// ran), read with `LRANGE`; from now on they count as handed out. At
    /// most `max` are returned, the rest stashed for the next get.
    pub(super) fn recover(&self, landing: &mut Landing, max: usize) -> Result<Vec<Vec<u8>>> {
        let Some(key) = landing.lost.clone() else {
            return Ok(Vec::new());
        };
        let mut items: Vec<Vec<u8>> = self.pool.with_conn("LRANGE", None, |c| {
            ::redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(c.link.as_dyn())
        })?;
        landing.lost = None;
        if !items.is_empty() {
            landing.spent.push(key);
        }
        if items.len() > max {
            let rest = items.split_off(max);
            self.stash(rest.into_iter().map(|i| ((0, 0), i)));
        }
        Ok(items)
    }

    /// `EVALSHA` of the get script with the queue's keys and key prefix,
    /// for a pipeline (the caller adds the other arguments).
    fn get_script_call(&self) -> ::redis::Cmd {
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(GET.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            eval.arg(k);
        }
        eval.arg(&self.prefix);
        eval
    }

    /// One move of up to `max` items into a fresh list of `landing`, in
    /// one round trip: the get script (which also deletes the landing's
    /// spent lists) and a pipelined `LRANGE` of the new list.
    fn move_batch(&self, landing: &mut Landing, max: usize, block: Block) -> Result<Moved> {
        if self.maxsize == 0 && !self.pool.target.cluster {
            return self.move_batch_native(landing, max, block);
        }
        let key = landing.next_key();
        let ttl = landing::TTL.as_millis() as u64;
        let mut eval = self.get_script_call();
        eval.arg(max)
            .arg(0)
            .arg(&key)
            .arg(ttl)
            .arg(self.maxsize)
            .arg(0)
            .arg(0)
            .arg(&landing.spent);
        let mut lrange = ::redis::cmd("LRANGE");
        lrange.arg(&key).arg(0).arg(-1);
        let (meta, items) = match self.get_pair(&eval, &lrange, block) {
            Ok(r) => r,
            Err(e) => {
                // It may have run: the next get reads the list.
                landing.lost(key);
                return Err(e);
            }
        };
        let reply = match meta {
            Value::Array(v) => v,
            _ => Vec::new(),
        };
        let moved = match reply.first().map_or(0, int) {
            2 => Moved::ShutDown,
            1 => Moved::Items(match items {
                Value::Array(items) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }),
            _ => Moved::Empty(reply.get(1).map_or(-1, int)),
        };
        landing.arrived(key, matches!(&moved, Moved::Items(i) if !i.is_empty()));
        Ok(moved)
    }

    /// [`move_batch`](Self::move_batch) on a plain unbounded queue on one
    /// server, with native commands in one `MULTI`/`EXEC` (no script: about
    /// as cheap as the `LPOP n` it replaces): deletes the spent lists, moves
    /// the head (`SORT … BY nosort LIMIT 0 max STORE`, which reads only
    /// that range of a list, and `LTRIM`), sets the new list's expiry, reads
    /// it, and reads the shutdown flag. Nothing to drop after an immediate
    /// shutdown: it emptied the list, and no put or give-back fills it
    /// again. Never repeated on the same connection (a repeat would store
    /// over the first one's items): any failure counts as a lost reply.
    /// (On a cluster, where transactions are not pipelined by the client,
    /// and on a bounded queue, which must signal room, the script does it.)
    fn move_batch_native(&self, landing: &mut Landing, max: usize, block: Block) -> Result<Moved> {
        let key = landing.next_key();
        let ttl = landing::TTL.as_millis() as u64;
        let (items, meta) = (&self.keys[0], &self.keys[1]);
        let mut p = ::redis::pipe();
        p.atomic();
        if !landing.spent.is_empty() {
            p.cmd("DEL").arg(&landing.spent).ignore();
        }
        p.cmd("SORT")
            .arg(items)
            .arg("BY")
            .arg("nosort")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .arg("STORE")
            .arg(&key)
            .ignore();
        p.cmd("LTRIM").arg(items).arg(max).arg(-1).ignore();
        p.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        p.cmd("LRANGE").arg(&key).arg(0).arg(-1);
        p.cmd("HGET").arg(meta).arg("shutdown");
        let limit = Instant::now() + self.pool.target.io_timeout;
        let r = self.pool.conn(deadline_of(block)).and_then(|mut c| {
            let mut r = p.query::<(Vec<Vec<u8>>, Option<i64>)>(c.link.as_dyn());
            // A server loading its data refuses the transaction as a whole
            // (EXECABORT): nothing ran, so it is sent again, as every call
            // waits for a loading server.
            while r.as_ref().is_err_and(is_transient) && Instant::now() < limit {
                std::thread::sleep(std::time::Duration::from_millis(20));
                r = p.query(c.link.as_dyn());
            }
            match r {
                Ok(v) => {
                    self.pool.release(c);
                    Ok(v)
                }
                Err(e) => {
                    // An interrupted read leaves the reply unread: the
                    // connection goes, as in a blocking call.
                    if !is_broken(&e) && !is_interrupted(&e) {
                        self.pool.release(c);
                    }
                    Err(self.pool.map_err("get", e))
                }
            }
        });
        let (got, shut) = match r {
            Ok(v) => v,
            Err(e) => {
                landing.lost(key);
                return Err(e);
            }
        };
        landing.arrived(key, !got.is_empty());
        Ok(if !got.is_empty() {
            Moved::Items(got)
        } else if shut.unwrap_or(0) > 0 {
            Moved::ShutDown
        } else {
            Moved::Empty(-1)
        })
    }

    /// The get script and a command pipelined after it, in one round trip
    /// (the script loaded again if the server lost it). On a connection
    /// that owes an acknowledgement's reply they are sent before it is
    /// read (see `acks.rs`). The script is idempotent (a request number), so
    /// any failure there is retried the usual way.
    fn get_pair(&self, eval: &Cmd, then: &Cmd, block: Block) -> Result<(Value, Value)> {
        if let Some(Ok(v)) = self.pool.after_pending(&[eval, then]) {
            let mut v = v.into_iter();
            if let (Some(a), Some(b)) = (v.next(), v.next()) {
                return Ok((a, b));
            }
        }
        self.pool.with_conn("get", deadline_of(block), |c| {
            match c.link.pair(eval, then) {
                Err(e)
                    if e.kind()
                        == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
                {
                    // A server restarted (or flushed its scripts) since.
                    GET.load(c.link.as_dyn())?;
                    c.link.pair(eval, then)
                }
                other => other,
            }
        })
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
        let mut eval = self.get_script_call();
        eval.arg(max)
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
        let (meta, items) = self.get_pair(&eval, &lrange, block)?;
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

    /// `get` on a plain unbounded queue: no lease, no space to signal, so
    /// one item is one `BLMOVE` into a landing list (pipelined with the
    /// `DEL` of the lists already handed out, the new list's expiry and a
    /// read of the shutdown flag), one round trip like a hand-written Redis
    /// list queue's `BLPOP`. A batch, or a get that must not wait, runs the
    /// get script first. `BLMOVE` watches the items list only: it waits in
    /// slices of [`SHUTDOWN_SLICE`](super::wait::SHUTDOWN_SLICE), and a
    /// slice that ends with the queue shut down asks the script, which
    /// takes what remains or says that the queue is shut down, in one atomic
    /// step.
    fn get_plain(
        &self,
        landing: &mut Landing,
        max: usize,
        block: Block,
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<u8>>> {
        let mut look = max > 1 || matches!(block, Block::No);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Empty);
            }
            if look {
                match self.move_batch(landing, max, Block::No)? {
                    Moved::Items(items) => return Ok(items),
                    Moved::ShutDown => return Err(Error::ShutDown),
                    Moved::Empty(_) if matches!(block, Block::No) => return Err(Error::Empty),
                    Moved::Empty(_) => {}
                }
            }
            look = false;
            let key = landing.next_key();
            let spent = landing.spent.clone();
            match self.blmove(&spent, &key, block, stop) {
                Err(e) => {
                    landing.lost(key);
                    return Err(e);
                }
                Ok(None) => return Err(Error::Empty),
                Ok(Some(Blocked::Interrupted)) => {
                    // Stopped and continued: the item it moved meanwhile,
                    // if any, is in the list.
                    landing.lost(key);
                    let items = self.recover(landing, max)?;
                    if !items.is_empty() {
                        return Ok(items);
                    }
                }
                Ok(Some(Blocked::Replied((item, shut)))) => {
                    landing.arrived(key, item.is_some());
                    if let Some(item) = item {
                        if self.closed.load(Ordering::Relaxed) {
                            // Do not lose an item moved just as the handle
                            // closed.
                            self.stash(std::iter::once(((0, 0), item)));
                            return Err(Error::Closed);
                        }
                        let mut items = vec![item];
                        if max > 1 {
                            // Woken by a producer: take what else it put,
                            // so that a batch consumer that caught up does
                            // not go on one item per round trip. (A lost
                            // reply here is read by the next get.)
                            if let Ok(Moved::Items(more)) =
                                self.move_batch(landing, max - 1, Block::No)
                            {
                                items.extend(more);
                            }
                        }
                        return Ok(items);
                    }
                    self.check_open()?;
                    if shut {
                        // What remains, or the end.
                        match self.move_batch(landing, max, Block::No)? {
                            Moved::Items(items) => return Ok(items),
                            Moved::ShutDown => return Err(Error::ShutDown),
                            Moved::Empty(_) => {}
                        }
                    }
                }
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
