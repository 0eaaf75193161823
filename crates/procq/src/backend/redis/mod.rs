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
//! | `procq:{jobs}:meta` | hash | kind, fingerprint, maxsize, unfinished tasks, max_deliveries, shutdown (1, or 2 if immediate), counters |
//! | `procq:{jobs}:avail` / `:space` / `:zero` | lists | wake-up tokens for getters / putters / joiners |
//! | `procq:{jobs}:shut` | list | wake-up tokens of a shutdown, for every blocked getter and putter |
//! | `procq:{jobs}:leases` | sorted set | consumer id → lease expiry (server ms) |
//! | `procq:{jobs}:held:<consumer>:<request>` | list | the items one get request took and its consumer has not all acknowledged |
//! | `procq:{jobs}:reqs:<consumer>` | set | that consumer's held requests |
//! | `procq:{jobs}:acks:<consumer>:<request>` / `:dmap:<consumer>:<request>` | bitmap / hash | items acknowledged one by one; delivery counts of retried items |
//! | `procq:{jobs}:producer:<producer>` | string | last put sequence number and outcome |
//! | `procq:{jobs}:landing:<handle>:<slot>:<n>` | list | a plain queue's items moved by one get, until the handle knows it has them (see [`landing`]); expires after a day |
//! | `procq:{jobs}.dead:…` | | the dead-letter queue `jobs.dead`, an ordinary queue in the same slot |
//!
//! All keys of a queue share the hash tag `{jobs}`, so on a cluster they
//! live in one slot and every script runs on one node.
//!
//! **Waiting** never polls: a caller that finds the queue empty (full, or
//! with tasks outstanding) drops the stale tokens inside the same script and
//! then blocks in `BLPOP` on the token list, which the next `put` (`get`,
//! last `task_done`) fills — the "wake-up token" form of a condition
//! variable (see [`wait`]). A plain unbounded queue's getter blocks in
//! `BLMOVE` on the items list itself (its put signals nothing), in slices
//! of a quarter second that each end with a look at the shutdown flag
//! (`BLMOVE` has one source, so it cannot also watch `shut`).
//!
//! **A plain queue's get** moves items into a landing list of the caller's
//! own rather than popping them, and they leave it only once the client
//! has them, so a lost reply loses nothing (see [`landing`]).
//!
//! **Shutdown** is a field of the meta hash that every put and get script
//! reads in the same atomic step, so a put racing a shutdown is either in
//! before it (and handed out by the gets that drain the queue) or refused.
//! Blocked getters and putters wait on the `shut` list as well as on their
//! own tokens (one multi-key `BLPOP`, same slot; a plain unbounded queue's
//! getters look at the flag every quarter second instead); the shutdown
//! script fills it, and every script that finds the queue shut down tops
//! it up, so every blocked client of every process wakes at once and a
//! later one never sleeps (see `common.lua`).
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
//! drops that connection and returns [`Error::Io`] naming the server (the
//! backend seam reports it as [`Error::Redis`]); the next call reconnects,
//! with exponential backoff between attempts.
//!
//! The client is the `redis` crate's synchronous connection (and its
//! synchronous cluster connection): the core API is blocking, and a private
//! async runtime would add threads and a large dependency for no gain (each
//! handle keeps a small pool of connections so that threads sharing a
//! handle never wait on each other's blocking call). The futures of
//! `get_async` & co. run that blocking call on a thread of their own (see
//! [`calls`]).
//!
//! # Modules
//!
//! ```text
//! mod.rs        RedisQueue: the scripts, open, handles     -> all below
//! calls.rs      async calls on threads of their own        -> ops, acks
//! ops.rs        put, get (plain, bounded, joinable), stash, shutdown -> wait, deliveries, landing
//! acks.rs       task_done by item number, join, unfinished -> wait, deliveries, owed
//! lease.rs      the heartbeat thread renewing a lease (and sending owed acks) -> conn
//! owed.rs       acks not waited for: their replies, the owed ones sent again -> conn, scripts
//! wait.rs       BLPOP on wake-up tokens, close             -> conn
//! admin.rs      stats, remove, list (no handle)            -> conn, url, key names
//! conn.rs       connections, cluster routing, TLS, pool, server checks -> url
//! deliveries.rs identities, request numbers, items held per thread (leaf)
//! landing.rs    a plain queue's landing lists: key names, what each holds (leaf)
//! scripts.rs    the Lua scripts, each prefixed with common.lua (leaf)
//! url.rs        URL grammar, options, passwords, redaction (leaf)
//! *.lua         the scripts' source
//! ```

mod acks;
mod admin;
pub(crate) mod calls;
mod conn;
mod deliveries;
mod landing;
mod lease;
mod ops;
mod owed;
mod scripts;
pub(crate) mod url;
mod wait;

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ::redis::{Script, Value};

pub(crate) use admin::{list, remove, stats};
use conn::{text, Pool};
use deliveries::{Id, Ids};
use landing::Landings;
use lease::Heartbeat;
use scripts::{GET, JOIN, OPEN, PUT, QSIZE, SHUTDOWN, TASK_DONE, UNGET};
pub(crate) use url::Target;
use url::{bad, redact, KEY_NAMES};

use crate::block::Block;
use crate::error::{Error, Result};
use crate::kind::Kind;

/// The stop flag of a blocking call, which nothing stops.
static NEVER: AtomicBool = AtomicBool::new(false);

/// Most items moved by one script call (Lua's argument stack is ~8000).
const CHUNK: usize = 1000;

/// Whether [`RedisQueue::open`] creates a missing queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Create {
    /// Never: a missing queue is [`Error::NotFound`].
    Never,
    /// If it is missing; an existing one is opened.
    IfMissing,
    /// Always: an existing one is [`Error::AlreadyExists`] (the check and
    /// the creation are one script, so of several racing creators exactly
    /// one succeeds).
    New,
}

/// One handle to a queue on a Redis server or cluster.
pub(crate) struct RedisQueue {
    /// The URL as given (it is the queue's "name").
    url: String,
    /// The parsed URL and this handle's connections (shared with its
    /// heartbeat thread, which sends acknowledgements owed).
    pool: Arc<Pool>,
    /// The eight keys every script takes ([`KEY_NAMES`]), and their common
    /// prefix.
    keys: [String; 8],
    prefix: String,
    kind: Kind,
    maxsize: u64,
    /// Fingerprint of the item type recorded at creation.
    fingerprint: u64,
    ids: Mutex<Ids>,
    /// A plain queue's landing lists (see [`landing`]).
    landings: Mutex<Landings>,
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

impl RedisQueue {
    /// Opens the queue at `url`, creating it as `create` says (in the same
    /// script, so `open` never creates, a queue removed meanwhile is never
    /// brought back by it, and an exclusive create never opens one made a
    /// moment before); a missing queue is [`Error::NotFound`] unless
    /// created, an existing one [`Error::AlreadyExists`] if it must be
    /// created. `want_kind` is what the caller
    /// creates; `require_kind` what it accepts; `maxsize` `None` takes the
    /// existing bound (0 when creating).
    pub(crate) fn open(
        url: &str,
        want_kind: Kind,
        require_kind: Option<Kind>,
        fingerprint: u64,
        maxsize: Option<u64>,
        create: Create,
    ) -> Result<RedisQueue> {
        let target = Target::parse(url)?;
        let max_deliveries = target.max_deliveries;
        let pool = Arc::new(Pool::new(url, target)?);
        pool.check_server()?;
        let mut q = RedisQueue::handle(
            url.to_owned(),
            pool,
            (want_kind, maxsize.unwrap_or(0), fingerprint),
        );
        let kind_code = want_kind as u32;
        let create_code: u8 = match create {
            Create::Never => 0,
            Create::IfMissing => 1,
            Create::New => 2,
        };
        let reply: Value = q.script("open", &OPEN, None, |inv| {
            inv.arg(kind_code)
                .arg(fingerprint)
                .arg(maxsize.map_or(-1, |m| m as i64))
                .arg(max_deliveries.map_or(-1, |m| m as i64))
                .arg(create_code);
        })?;
        let reply = match reply {
            Value::Array(fields) => fields,
            Value::Int(0) => return Err(Error::AlreadyExists(redact(url))),
            _ => return Err(Error::NotFound(redact(url))),
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
            Arc::new(self.pool.fresh()),
            (self.kind, self.maxsize, self.fingerprint),
        )
    }

    /// A handle with fresh per-handle state: no connections yet, its own
    /// consumer identity and request numbering, not closed.
    fn handle(
        url: String,
        pool: Arc<Pool>,
        (kind, maxsize, fingerprint): (Kind, u64, u64),
    ) -> Self {
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
            landings: Mutex::new(Landings::new()),
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

    /// Runs one of the scripts with the eight keys, the prefix, and the
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

    fn landings(&self) -> std::sync::MutexGuard<'_, Landings> {
        self.landings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles a plain queue's landing lists as the handle goes: items of
    /// a move whose reply was lost, and items stashed but never handed out,
    /// go back to the head of the queue; lists handed out are deleted.
    /// (What cannot be reached now expires with its list, see
    /// [`landing::TTL`].)
    fn settle_landings(&self) {
        let all = {
            let mut ls = self.landings();
            if !ls.is_ours() {
                return; // a forked child's copy: its parent settles them
            }
            ls.take_all()
        };
        let mut back: Vec<Vec<u8>> = {
            let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
            stash.drain(..).map(|(_, item)| item).collect()
        };
        let mut spent = Vec::new();
        for mut l in all {
            match self.recover(&mut l, usize::MAX) {
                Ok(items) => back.extend(items),
                // The list keeps its items until it expires.
                Err(_) => l.lost = None,
            }
            spent.append(&mut l.spent);
        }
        if !back.is_empty() {
            self.give_back(back.into_iter().map(|i| ((0, 0), i)).collect());
        }
        if !spent.is_empty() {
            let _ = self.pool.with_conn("DEL", None, |c| {
                ::redis::cmd("DEL")
                    .arg(&spent)
                    .query::<i64>(c.link.as_dyn())
            });
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Starts the heartbeat that renews this consumer's lease while the
    /// process lives, and sends acknowledgements owed (see `owed.rs`),
    /// unless one runs already (or the URL says `heartbeat=0`).
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
        let interval = Heartbeat::interval(t.lease);
        if let Some(beat) = Heartbeat::start(
            self.pool.connector().clone(),
            self.keys[4].clone(),
            consumer.to_owned(),
            (t.lease, interval),
            t.io_timeout,
            self.owed_acks_sender(consumer, interval),
        ) {
            *slot = Some((pid, beat));
        }
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        if self.kind == Kind::Queue {
            self.settle_landings();
        } else {
            // Acknowledgements sent without waiting: their replies read,
            // the failed ones sent again; all within one `timeout_ms`, so
            // that a server gone silent does not hold up the drop longer
            // (what is not sent by then comes back when the lease runs
            // out: at-least-once).
            let _ = self.flush_acks(Some(Instant::now() + self.pool.target.io_timeout));
        }
        let slot = self.heartbeat.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, beat)) = slot.take() {
            if pid == std::process::id() {
                beat.stop();
            }
        }
    }
}
