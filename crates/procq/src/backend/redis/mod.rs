//! The Redis backend: the same [`Queue`](crate::Queue) and
//! [`JoinableQueue`](crate::JoinableQueue) over a Redis server or a Redis
//! Cluster, so that processes on several machines share one queue. Enabled
//! by the `redis` cargo feature; a queue is opened with a URL instead of a
//! name (see [`url`] for the grammar):
//! `redis://[user:password@]host:port/<db>/<name>[?options]`,
//! `redis+cluster://host:port[,host:port…]/<name>`, and `rediss://` /
//! `rediss+cluster://` for TLS (the `redis-tls` feature).
//!
//! # Design
//!
//! Every state change is one Lua script (`*.lua` beside this file, each
//! prefixed with `common.lua`), so it is atomic across all clients: the room
//! check and the push of `put` (maxsize is never exceeded, never
//! check-then-act), the pop and the move to the in-flight hash of a joinable
//! `get`, the acknowledgement of `task_done`. Keys of a queue named `jobs`:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `procq:{jobs}:items` | list | the items as put, head = oldest |
//! | `procq:{jobs}:retry` | list | a joinable queue's items put back after a lease ran out, `<deliveries>:<payload>`; taken first |
//! | `procq:{jobs}:meta` | hash | kind, fingerprint, maxsize, unfinished tasks, max_deliveries, counters |
//! | `procq:{jobs}:avail` / `:space` / `:zero` | lists | wake-up tokens for getters / putters / joiners |
//! | `procq:{jobs}:leases` | sorted set | consumer id → lease expiry (server ms) |
//! | `procq:{jobs}:held:<consumer>:<request>` | list | the items one get request took and its consumer has not all acknowledged |
//! | `procq:{jobs}:reqs:<consumer>` | set | that consumer's held requests |
//! | `procq:{jobs}:acks:<consumer>:<request>` / `:dmap:<consumer>:<request>` | bitmap / hash | items acknowledged one by one; delivery counts of retried items |
//! | `procq:{jobs}:producer:<producer>` | string | last put sequence number and outcome |
//! | `procq:{jobs}.dead:…` | | the dead-letter queue `jobs.dead`, an ordinary queue in the same slot |
//!
//! All keys of a queue share the hash tag `{jobs}`, so on a cluster they
//! live in one slot and every script runs on one node.
//!
//! **Waiting** never polls: a caller that finds the queue empty (full, or
//! with tasks outstanding) drops the stale tokens inside the same script and
//! then blocks in `BLPOP` on the token list, which the next `put` (`get`,
//! last `task_done`) fills — the "wake-up token" form of a condition
//! variable (see [`wait`]).
//!
//! **At-least-once delivery** for joinable queues is the reliable-queue
//! pattern (Redis documents it under `LMOVE`), made exact: `get` moves
//! items in C into a list of the request's own (`RENAME` when it takes the
//! whole queue, else `SORT … BY nosort LIMIT … STORE` and `LTRIM`), sets
//! the consumer's lease, and the client reads that list with a pipelined
//! `LRANGE` (no payload ever passes through Lua); `task_done` acknowledges
//! by (request, index) the item the calling thread got (see
//! [`deliveries`]), a whole batch at once dropping its list; a consumer
//! whose lease runs out (its process died, or stopped longer than the
//! lease) has its unacknowledged items put back at the head of the queue by
//! the next script that runs `reap`, or moved to the dead-letter queue once
//! delivered `max_deliveries` times. Request numbers are never reused for
//! new items, so a late acknowledgement names a request no longer held and
//! is not counted.
//!
//! **Faults** ("at-least-once over a network", design notes): a request
//! whose reply was lost may still have run, so every state-changing script
//! is idempotent. `put` carries the producer's sequence number (a retry
//! with the same items reuses it and is answered from the producer key);
//! `get` carries the consumer's request number (the next get after a lost
//! reply repeats it and receives the same items); `task_done` names items
//! (acknowledging twice counts once); `reap` and the heartbeat's renewal
//! are idempotent by nature. A command that fails with a connection error
//! drops that connection and returns [`Error::Io`] naming the server; the
//! next call reconnects, with exponential backoff between attempts.
//!
//! The client is the `redis` crate's synchronous connection (and its
//! synchronous cluster connection): the core API is blocking, and a private
//! async runtime would add threads and a large dependency for no gain (each
//! handle keeps a small pool of connections so that threads sharing a
//! handle never wait on each other's blocking call).

mod admin;
mod conn;
mod deliveries;
mod lease;
mod url;
mod wait;

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use ::redis::{Script, Value};

pub(crate) use admin::{list, remove, stats};
use conn::Pool;
use deliveries::{Id, Ids};
use lease::Heartbeat;
pub(crate) use url::Target;
use url::{bad, redact};
use wait::Token;

use crate::block::Block;
use crate::error::{Error, Result};
use crate::kind::Kind;

/// A script, prefixed with the shared helpers.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}
static OPEN: LazyLock<Script> = script!("open.lua");
static PUT: LazyLock<Script> = script!("put.lua");
static GET: LazyLock<Script> = script!("get.lua");
static TASK_DONE: LazyLock<Script> = script!("task_done.lua");
static JOIN: LazyLock<Script> = script!("join.lua");
static QSIZE: LazyLock<Script> = script!("qsize.lua");

/// Most items moved by one script call (Lua's argument stack is ~8000).
const CHUNK: usize = 1000;

/// The keys every script takes, after the queue's prefix (`common.lua`).
pub(crate) const KEY_NAMES: [&str; 7] =
    ["items", "meta", "avail", "space", "leases", "zero", "retry"];

/// One handle to a queue on a Redis server or cluster.
pub(crate) struct RedisQueue {
    /// The URL as given (it is the queue's "name").
    url: String,
    /// The parsed URL and this handle's connections.
    pool: Pool,
    /// The seven keys every script takes, and their common prefix.
    keys: [String; 7],
    prefix: String,
    kind: Kind,
    maxsize: u64,
    /// Fingerprint of the item type recorded at creation.
    fingerprint: u64,
    ids: Mutex<Ids>,
    /// `CLIENT ID`s of this handle's connections now blocked in a wait.
    blocked: Mutex<Vec<i64>>,
    /// Items already taken from Redis but not yet returned (after an
    /// undecodable item ended a batch), with their ids.
    stash: Mutex<VecDeque<(Id, Vec<u8>)>>,
    /// The thread renewing this handle's lease, with the pid that started
    /// it (a forked child starts its own: threads do not survive `fork`).
    heartbeat: Mutex<Option<(u32, Arc<Heartbeat>)>>,
    pub(crate) closed: AtomicBool,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn hash_items(items: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    items.hash(&mut h);
    h.finish()
}

fn deadline_of(block: Block) -> Option<Instant> {
    match block {
        Block::Until(d) => Some(d),
        _ => None,
    }
}

/// Sorted numbers as inclusive ranges of consecutive ones.
fn ranges(sorted: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, to)) if *to + 1 == n => *to = n,
            _ => out.push((n, n)),
        }
    }
    out
}

impl RedisQueue {
    /// Opens the queue at `url`, creating it if it is missing and `create`
    /// says so (in the same script, so `open` never creates and a queue
    /// removed meanwhile is never brought back by it); a missing queue is
    /// [`Error::NotFound`] otherwise. `want_kind` is what the caller
    /// creates; `require_kind` what it accepts; `maxsize` `None` takes the
    /// existing bound (0 when creating).
    pub(crate) fn open(
        url: &str,
        want_kind: Kind,
        require_kind: Option<Kind>,
        fingerprint: u64,
        maxsize: Option<u64>,
        create: bool,
    ) -> Result<RedisQueue> {
        let target = Target::parse(url)?;
        let max_deliveries = target.max_deliveries;
        let pool = Pool::new(url, target)?;
        pool.check_server()?;
        let mut q = RedisQueue::handle(
            url.to_owned(),
            pool,
            (want_kind, maxsize.unwrap_or(0), fingerprint),
        );
        let kind_code = want_kind as u32;
        let reply: Option<Vec<Value>> = q.script("open", &OPEN, None, |inv| {
            inv.arg(kind_code)
                .arg(fingerprint)
                .arg(maxsize.map_or(-1, |m| m as i64))
                .arg(max_deliveries.map_or(-1, |m| m as i64))
                .arg(u8::from(create));
        })?;
        let Some(reply) = reply else {
            return Err(Error::NotFound(redact(url)));
        };
        let field = |i: usize| reply.get(i).and_then(text).unwrap_or_default();
        let name = q.pool.target.name.clone();
        let kind = match field(0).as_str() {
            "1" => Kind::Queue,
            "2" => Kind::Joinable,
            other => return Err(Error::invalid(&name, format!("unknown kind {other:?}"))),
        };
        let version = if kind == Kind::Joinable { "2" } else { "1" };
        if field(3) != version {
            return Err(Error::invalid(
                &name,
                format!(
                    "stored in layout version {:?}, this procq reads {version} \
                     (drain it with the procq that made it, or remove it)",
                    field(3)
                ),
            ));
        }
        if require_kind.is_some_and(|k| k != kind) {
            return Err(Error::invalid(
                &name,
                format!("it is a {kind:?}, not a {want_kind:?}"),
            ));
        }
        let stored_fp: u64 = field(1).parse().unwrap_or(0);
        if stored_fp != 0 && fingerprint != 0 && stored_fp != fingerprint {
            return Err(Error::invalid(
                &name,
                "it was created for another item type",
            ));
        }
        let stored_max: u64 = field(2).parse().unwrap_or(0);
        if let Some(m) = maxsize {
            if m != stored_max {
                return Err(Error::invalid(
                    &name,
                    format!("it exists with maxsize {stored_max}, not {m}"),
                ));
            }
        }
        if let Some(m) = max_deliveries {
            if kind != Kind::Joinable {
                return Err(bad(url, "max_deliveries applies to a JoinableQueue only"));
            }
            let stored: u64 = field(4).parse().unwrap_or(0);
            if stored != m {
                return Err(Error::invalid(
                    &name,
                    format!("it exists with max_deliveries {stored}, not {m}"),
                ));
            }
        }
        q.kind = kind;
        q.maxsize = stored_max;
        q.fingerprint = stored_fp;
        Ok(q)
    }

    /// A new, independent handle to the same queue (own connections, own
    /// consumer identity, own `close`).
    pub(crate) fn clone_handle(&self) -> RedisQueue {
        RedisQueue::handle(
            self.url.clone(),
            self.pool.fresh(),
            (self.kind, self.maxsize, self.fingerprint),
        )
    }

    /// A handle with fresh per-handle state: no connections yet, its own
    /// consumer identity and request numbering, not closed.
    fn handle(url: String, pool: Pool, (kind, maxsize, fingerprint): (Kind, u64, u64)) -> Self {
        let prefix = pool.target.prefix();
        let keys = KEY_NAMES.map(|k| format!("{prefix}:{k}"));
        RedisQueue {
            url,
            pool,
            keys,
            prefix,
            kind,
            maxsize,
            fingerprint,
            ids: Mutex::new(Ids::new()),
            blocked: Mutex::new(Vec::new()),
            stash: Mutex::new(VecDeque::new()),
            heartbeat: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.maxsize
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, Ids> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.check_pid();
        ids
    }

    /// Runs one of the scripts with the seven keys, the prefix, and the
    /// arguments `args` adds.
    fn script<R: ::redis::FromRedisValue>(
        &self,
        op: &str,
        script: &Script,
        deadline: Option<Instant>,
        args: impl FnOnce(&mut ::redis::ScriptInvocation<'_>),
    ) -> Result<R> {
        let mut inv = script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv.arg(&self.prefix);
        args(&mut inv);
        self.pool
            .with_conn(op, deadline, |c| inv.invoke(c.link.as_dyn()))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Puts `items` (already encoded), waiting for room as `block` allows.
    /// Returns how many went in (all of them unless the wait ran out).
    pub(crate) fn put(&self, items: &[&[u8]], block: Block) -> Result<usize> {
        let mut done = 0;
        while done < items.len() {
            self.check_open()?;
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
            if !self.wait(Token::Space, block, -1)? {
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
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        let taken = self.take(max, block)?;
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
                return Ok(1);
            }
            self.stash(std::iter::once((id, bytes)).chain(iter));
            break;
        }
        let n = handed.len();
        if joinable {
            self.ids().hand_out(handed);
        }
        Ok(n)
    }

    /// Takes up to `max` items with their ids (`(0, 0)` on a plain queue),
    /// stashed ones first.
    fn take(&self, max: usize, block: Block) -> Result<Vec<(Id, Vec<u8>)>> {
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
            let items = self.get_plain(max, block)?;
            return Ok(items.into_iter().map(|i| ((0, 0), i)).collect());
        }
        let joinable = self.kind == Kind::Joinable;
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        loop {
            let (consumer, seq) = {
                let mut ids = self.ids();
                let seq = if joinable { ids.next_get() } else { 0 };
                (ids.consumer.clone(), seq)
            };
            let reply = if joinable {
                self.get_joinable(&consumer, max, seq, block)
            } else {
                self.script("get", &GET, deadline_of(block), |inv| {
                    inv.arg(max)
                        .arg(0)
                        .arg(&consumer)
                        .arg(lease_ms)
                        .arg(self.maxsize)
                        .arg(seq)
                        .arg(1);
                })
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
            if !self.wait(Token::Avail, block, hint)? {
                return Err(Error::Empty);
            }
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
    /// hand-written Redis list queue.
    fn get_plain(&self, max: usize, block: Block) -> Result<Vec<Vec<u8>>> {
        let key = &self.keys[0];
        loop {
            if max > 1 || matches!(block, Block::No) {
                let v: Option<Vec<Vec<u8>>> = self.pool.with_conn("LPOP", None, |c| {
                    ::redis::cmd("LPOP")
                        .arg(key)
                        .arg(max)
                        .query(c.link.as_dyn())
                })?;
                if let Some(items) = v.filter(|v| !v.is_empty()) {
                    return Ok(items);
                }
            }
            match self.blpop(key, block, -1)? {
                None => return Err(Error::Empty),
                Some(v) => {
                    if let Some(item) = wait::popped(&v) {
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
                }
            }
        }
    }

    /// Keeps items taken but not handed out (they come first next time).
    fn stash(&self, items: impl IntoIterator<Item = (Id, Vec<u8>)>) {
        let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
        for (i, item) in items.into_iter().enumerate() {
            stash.insert(i, item);
        }
    }

    /// Acknowledges `n` items this handle handed out (see [`deliveries`]
    /// for which), in one round trip; [`Error::TaskDoneTooOften`], with
    /// nothing acknowledged, if it holds fewer.
    pub(crate) fn task_done(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let chosen = self.ids().take_for_ack(n).ok_or(Error::TaskDoneTooOften)?;
        let ids: Vec<Id> = chosen.iter().map(|&(_, id)| id).collect();
        match self.acknowledge(&ids) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Acknowledging twice counts once: keep them for a retry.
                self.ids().unacknowledge(chosen);
                Err(e)
            }
        }
    }

    /// Acknowledges items by id in one script call (per [`CHUNK`] ranges),
    /// each request's indexes sent as ranges (a batch is one); idempotent,
    /// so a call that fails on a broken connection is tried once more.
    fn acknowledge(&self, ids: &[Id]) -> Result<()> {
        let consumer = self.ids().consumer.clone();
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let triples: Vec<(u64, u64, u64)> = ids
            .chunk_by(|a, b| a.0 == b.0)
            .flat_map(|group| {
                let seq = group[0].0;
                ranges(group.iter().map(|&(_, i)| i))
                    .into_iter()
                    .map(move |(from, to)| (seq, from, to))
            })
            .collect();
        for chunk in triples.chunks(CHUNK / 3) {
            let run = || {
                self.script::<i64>("task_done", &TASK_DONE, None, |inv| {
                    inv.arg(&consumer).arg(lease_ms);
                    for (seq, from, to) in chunk {
                        inv.arg(*seq).arg(*from).arg(*to);
                    }
                })
            };
            match run() {
                Err(Error::Io { .. }) => run().map(|_| ())?,
                other => other.map(|_| ())?,
            }
        }
        Ok(())
    }

    /// Waits until no task is outstanding; [`Error::Full`] when `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        loop {
            self.check_open()?;
            let reply: Vec<Value> = self.script("join", &JOIN, deadline_of(block), |_| {})?;
            if reply.first().map_or(0, int) == 1 {
                return Ok(());
            }
            let hint = reply.get(1).map_or(-1, int);
            if !self.wait(Token::Zero, block, hint)? {
                return Err(Error::Full);
            }
        }
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

    /// Tasks put and not yet acknowledged.
    pub(crate) fn unfinished(&self) -> Result<u64> {
        let key = &self.keys[1];
        self.pool
            .with_conn("HGET", None, |c| {
                ::redis::cmd("HGET")
                    .arg(key)
                    .arg("unfinished")
                    .query::<Option<i64>>(c.link.as_dyn())
            })
            .map(|v| v.unwrap_or(0).max(0) as u64)
    }

    /// Starts the heartbeat that renews this consumer's lease while the
    /// process lives, unless one runs already (or the URL says
    /// `heartbeat=0`).
    fn start_heartbeat(&self, consumer: &str) {
        let t = &self.pool.target;
        if !t.heartbeat {
            return;
        }
        let pid = std::process::id();
        let mut slot = self.heartbeat.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(p, _)| *p == pid) {
            return;
        }
        if let Some(beat) = Heartbeat::start(
            self.pool.connector().clone(),
            self.keys[4].clone(),
            consumer.to_owned(),
            t.lease,
            t.io_timeout,
        ) {
            *slot = Some((pid, beat));
        }
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        let slot = self.heartbeat.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, beat)) = slot.take() {
            if pid == std::process::id() {
                beat.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn acknowledged_numbers_go_as_ranges() {
        assert_eq!(super::ranges([]), []);
        assert_eq!(
            super::ranges([3, 4, 5, 7, 9, 10]),
            [(3, 5), (7, 7), (9, 10)]
        );
    }
}
