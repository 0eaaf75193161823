//! The Redis backend: the same [`Queue`](crate::Queue) and
//! [`JoinableQueue`](crate::JoinableQueue) over a Redis server, so that
//! processes on several machines share one queue. Enabled by the `redis`
//! cargo feature; a queue is opened with a URL instead of a name:
//! `redis://[user:password@]host:port/<db>/<name>[?lease_ms=..&timeout_ms=..&heartbeat=0|1]`
//! (`rediss://` for TLS, with the `redis-tls` feature).
//!
//! # Design
//!
//! Every state change is one Lua script (`*.lua` beside this file, each
//! prefixed with `common.lua`), so it is atomic across all clients: the room
//! check and the push of `put` (maxsize is never exceeded, never
//! check-then-act), the pop and the move to the in-flight list of a joinable
//! `get`, the acknowledgement of `task_done`. Keys of a queue named `jobs`:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `procq:{jobs}:items` | list | the items, head = oldest |
//! | `procq:{jobs}:meta` | hash | kind, fingerprint, maxsize, unfinished tasks |
//! | `procq:{jobs}:avail` / `:space` / `:zero` | lists | wake-up tokens for getters / putters / joiners |
//! | `procq:{jobs}:leases` | sorted set | consumer id → lease expiry (server ms) |
//! | `procq:{jobs}:inflight:<consumer>` | list | items got and not yet acknowledged |
//! | `procq:{jobs}:producer:<producer>` | string | last put sequence number and outcome |
//!
//! **Waiting** never polls: a caller that finds the queue empty (full, or
//! with tasks outstanding) drops the stale tokens inside the same script and
//! then blocks in `BLPOP` on the token list, which the next `put` (`get`,
//! last `task_done`) fills — the "wake-up token" form of a condition
//! variable. A blocked call also wakes when the earliest lease runs out (to
//! requeue a dead consumer's items) and at least every [`SAFETY_SLICE`], a
//! backstop against a token lost with a broken connection. `close()` wakes
//! the handle's own blocked calls with `CLIENT UNBLOCK`.
//!
//! **At-least-once delivery** for joinable queues is the reliable-queue
//! pattern (Redis documents it under `LMOVE`): `get` moves items into the
//! consumer's in-flight list and sets its lease; `task_done` removes the
//! oldest one; a consumer whose lease runs out (it died, or took longer than
//! the lease without calling `get`/`task_done`) has its in-flight items put
//! back at the head of the queue by the next script that runs `reap`.
//!
//! **Faults**: a command that fails with a connection error drops that
//! connection and returns [`Error::Io`] naming the server; the next call
//! reconnects, with exponential backoff between attempts. A `put` whose
//! reply was lost is retried by the caller; when the retry carries the same
//! bytes it reuses the lost call's sequence number, and `put.lua` answers it
//! from the producer key instead of enqueueing twice.
//!
//! The client is the `redis` crate's synchronous connection: the core API is
//! blocking, and a private async runtime would add threads and a large
//! dependency for no gain (each handle keeps a small pool of connections so
//! that threads sharing a handle never wait on each other's blocking call).

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ::redis::{Client, Connection, RedisError, Script, Value};

use crate::block::Block;
use crate::error::{Error, Result};
use crate::kind::Kind;

/// Scripts, each prefixed with the shared helpers.
static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("common.lua"),
        include_str!("open.lua")
    ))
});
static PUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!("put.lua"))));
static GET: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!("get.lua"))));
static TASK_DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("common.lua"),
        include_str!("task_done.lua")
    ))
});
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("common.lua"),
        include_str!("join.lua")
    ))
});

/// The heartbeat's lease renewal (takes only the leases key).
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("renew.lua")));

/// Longest single blocking wait: a backstop against a wake-up token lost
/// with a broken connection, not the wake-up path.
pub(crate) const SAFETY_SLICE: Duration = Duration::from_secs(2);
/// Default lease of a joinable consumer's unacknowledged items.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default limit on connecting and on each non-blocking command.
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most items moved by one script call (Lua's argument stack is ~8000).
const CHUNK: usize = 1000;

/// A parsed queue URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// The server URL handed to the client: `scheme://authority/db`.
    server: String,
    /// The queue name (the last path segment).
    name: String,
    /// Lease of in-flight items.
    lease: Duration,
    /// Connect and command timeout.
    io_timeout: Duration,
    /// Whether a consumer's lease is renewed while its process lives.
    heartbeat: bool,
}

fn bad(url: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: redact(url),
        reason,
    }
}

/// The URL with any password replaced by `***`, for messages and `Debug`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

impl Target {
    /// Parses `redis[s]://[user:pass@]host[:port]/<db>/<name>[?lease_ms=N&timeout_ms=N&heartbeat=0|1]`.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "expected redis://host:port/db/name"))?;
        if scheme != "redis" && scheme != "rediss" {
            return Err(bad(url, "the scheme must be redis:// or rediss://"));
        }
        #[cfg(not(feature = "redis-tls"))]
        if scheme == "rediss" {
            return Err(bad(
                url,
                "rediss:// (TLS) needs procq's `redis-tls` cargo feature",
            ));
        }
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main
            .split_once('/')
            .ok_or_else(|| bad(url, "expected redis://host:port/db/name: no /db/name"))?;
        if authority.is_empty() || authority.ends_with('@') {
            return Err(bad(url, "the URL names no host"));
        }
        let (db, name) = path
            .split_once('/')
            .ok_or_else(|| bad(url, "expected redis://host:port/db/name: no /name"))?;
        if db.is_empty() || !db.bytes().all(|b| b.is_ascii_digit()) || db.len() > 5 {
            return Err(bad(url, "the database must be a number, as in /0/name"));
        }
        if name.is_empty() || name.len() > 200 {
            return Err(bad(url, "the queue name must have 1 to 200 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
        {
            return Err(bad(
                url,
                "the queue name may only hold letters, digits and - _ . : @",
            ));
        }
        let mut target = Target {
            server: format!("{scheme}://{authority}/{db}"),
            name: name.to_owned(),
            lease: DEFAULT_LEASE,
            io_timeout: DEFAULT_IO_TIMEOUT,
            heartbeat: true,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "heartbeat" {
                target.heartbeat = match value {
                    "1" => true,
                    "0" => false,
                    _ => return Err(bad(url, "heartbeat takes 0 or 1")),
                };
                continue;
            }
            let ms: u64 = value
                .parse()
                .ok()
                .filter(|&v| v > 0 && v <= 86_400_000)
                .ok_or_else(|| bad(url, "lease_ms and timeout_ms take 1 to 86400000"))?;
            match key {
                "lease_ms" => target.lease = Duration::from_millis(ms),
                "timeout_ms" => target.io_timeout = Duration::from_millis(ms),
                _ => {
                    return Err(bad(
                        url,
                        "unknown URL option (lease_ms, timeout_ms, heartbeat)",
                    ))
                }
            }
        }
        Ok(target)
    }
}

/// A pooled connection and the `CLIENT ID` the server gave it (asked for
/// only before its first blocking command, to be able to `CLIENT UNBLOCK` it).
struct Conn {
    conn: Connection,
    client_id: Option<i64>,
}

/// Per-process identity of a handle: a forked child gets its own, so parent
/// and child never share an in-flight list or a put sequence.
struct Ids {
    pid: u32,
    consumer: String,
    producer: String,
    /// Last put sequence number used.
    seq: u64,
    /// The put that failed last, as (sequence number, hash of its items):
    /// a retry with the same items reuses the number.
    failed_put: Option<(u64, u64)>,
}

/// Reconnection backoff, shared by the calls of one handle.
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

/// One handle to a queue on a Redis server.
pub(crate) struct RedisQueue {
    /// The URL as given (it is the queue's "name").
    url: String,
    target: Target,
    client: Client,
    /// The six keys every script takes, and their common prefix.
    keys: [String; 6],
    prefix: String,
    kind: Kind,
    maxsize: u64,
    /// Fingerprint of the item type recorded at creation.
    fingerprint: u64,
    ids: Mutex<Ids>,
    pool: Mutex<(u32, Vec<Conn>)>,
    /// `CLIENT ID`s of this handle's connections now blocked in a wait.
    blocked: Mutex<Vec<i64>>,
    backoff: Mutex<Backoff>,
    /// Items already taken from Redis but not yet returned (after an
    /// undecodable item ended a batch).
    stash: Mutex<VecDeque<Vec<u8>>>,
    /// The thread renewing this handle's lease, with the pid that started
    /// it (a forked child starts its own: threads do not survive `fork`).
    heartbeat: Mutex<Option<(u32, Arc<Heartbeat>)>>,
    pub(crate) closed: AtomicBool,
}

/// Control block of a heartbeat thread.
struct Heartbeat {
    /// Set when the handle is dropped; the thread exits at its next tick.
    stop: AtomicBool,
    /// The thread, to wake it early on stop.
    thread: std::thread::Thread,
}

fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS: unique across hosts and processes.
    let random =
        std::collections::hash_map::RandomState::new().hash_one(COUNTER.load(Ordering::Relaxed));
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        random,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Ids {
    fn new() -> Ids {
        Ids {
            pid: std::process::id(),
            consumer: unique_id(),
            producer: unique_id(),
            seq: 0,
            failed_put: None,
        }
    }

    /// Starts afresh in a forked child.
    fn check_pid(&mut self) {
        if self.pid != std::process::id() {
            *self = Ids::new();
        }
    }
}

/// What a failed Redis call becomes: `Io` for transport problems (with the
/// matching `io::ErrorKind`), `InvalidQueue` for a server-side refusal.
fn map_err(target: &Target, op: &str, e: RedisError) -> Error {
    let context = format!("redis {op} on {}", redact(&target.server));
    if e.is_timeout() {
        Error::io(context, io::Error::new(io::ErrorKind::TimedOut, e))
    } else if e.is_connection_refusal() {
        Error::io(context, io::Error::new(io::ErrorKind::ConnectionRefused, e))
    } else if e.is_io_error() || e.is_connection_dropped() {
        Error::io(context, io::Error::new(io::ErrorKind::ConnectionReset, e))
    } else {
        Error::InvalidQueue {
            name: target.name.clone(),
            reason: format!("{context}: {e}"),
        }
    }
}

/// Whether the connection that produced `e` must be thrown away.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
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

/// The value of a `BLPOP` reply (`[key, value]`), if it popped one.
fn popped(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Array(kv) => match kv.get(1) {
            Some(Value::BulkString(b)) => Some(b.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn hash_items(items: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    items.hash(&mut h);
    h.finish()
}

/// What to wait for between script calls.
#[derive(Clone, Copy)]
enum Token {
    Avail,
    Space,
    Zero,
}

impl RedisQueue {
    /// Opens (creating if missing) the queue at `url`. `want_kind` is what the
    /// caller creates; `require_kind` what it accepts; `maxsize` `None` takes
    /// the existing bound (0 when creating).
    pub(crate) fn open(
        url: &str,
        want_kind: Kind,
        require_kind: Option<Kind>,
        fingerprint: u64,
        maxsize: Option<u64>,
    ) -> Result<RedisQueue> {
        let target = Target::parse(url)?;
        let client = Client::open(target.server.as_str()).map_err(|e| {
            let _ = e;
            bad(url, "the redis client rejected this URL")
        })?;
        let prefix = format!("procq:{{{}}}", target.name);
        let keys =
            ["items", "meta", "avail", "space", "leases", "zero"].map(|k| format!("{prefix}:{k}"));
        let mut q = RedisQueue::handle(
            url.to_owned(),
            target,
            client,
            keys,
            prefix,
            (want_kind, maxsize.unwrap_or(0), fingerprint),
        );
        let kind_code = want_kind as u32;
        let reply: Vec<Value> = q.script("open", &OPEN, None, |inv| {
            inv.arg(kind_code)
                .arg(fingerprint)
                .arg(maxsize.map_or(-1, |m| m as i64));
        })?;
        let field = |i: usize| reply.get(i).and_then(text).unwrap_or_default();
        let name = q.target.name.clone();
        if field(3) != "1" {
            return Err(Error::invalid(
                &name,
                "not a procq queue of layout version 1",
            ));
        }
        let kind = match field(0).as_str() {
            "1" => Kind::Queue,
            "2" => Kind::Joinable,
            other => return Err(Error::invalid(&name, format!("unknown kind {other:?}"))),
        };
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
            self.target.clone(),
            self.client.clone(),
            self.keys.clone(),
            self.prefix.clone(),
            (self.kind, self.maxsize, self.fingerprint),
        )
    }

    /// A handle with fresh per-handle state: no connections yet, its own
    /// consumer identity and put numbering, not closed.
    fn handle(
        url: String,
        target: Target,
        client: Client,
        keys: [String; 6],
        prefix: String,
        (kind, maxsize, fingerprint): (Kind, u64, u64),
    ) -> RedisQueue {
        RedisQueue {
            url,
            target,
            client,
            keys,
            prefix,
            kind,
            maxsize,
            fingerprint,
            ids: Mutex::new(Ids::new()),
            pool: Mutex::new((std::process::id(), Vec::new())),
            blocked: Mutex::new(Vec::new()),
            backoff: Mutex::new(Backoff {
                failures: 0,
                not_before: None,
            }),
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

    /// Takes a pooled connection, or connects (with backoff between failed
    /// attempts) until `deadline` or the I/O timeout, whichever is first.
    fn conn(&self, deadline: Option<Instant>) -> Result<Conn> {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.0 != std::process::id() {
                // Forked: the inherited sockets belong to the parent.
                pool.1.clear();
                pool.0 = std::process::id();
            }
            if let Some(c) = pool.1.pop() {
                return Ok(c);
            }
        }
        let now = Instant::now();
        let limit = deadline.map_or(now + self.target.io_timeout, |d| {
            d.min(now + self.target.io_timeout)
        });
        // The last attempt's error: what a caller is told when time runs out.
        let mut last: Option<RedisError> = None;
        loop {
            let wait = {
                let b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                b.not_before
                    .map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Some(w) = wait.filter(|w| !w.is_zero()) {
                if Instant::now() + w > limit {
                    if let Some(e) = last {
                        return Err(map_err(&self.target, "connect", e));
                    }
                    return Err(Error::io(
                        format!("redis connect to {}", redact(&self.target.server)),
                        io::Error::new(
                            io::ErrorKind::NotConnected,
                            "server unreachable; backing off before the next attempt",
                        ),
                    ));
                }
                std::thread::sleep(w);
            }
            let budget = limit
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50));
            match self.client.get_connection_with_timeout(budget) {
                Ok(conn) => {
                    let t = Some(self.target.io_timeout);
                    let _ = conn.set_read_timeout(t);
                    let _ = conn.set_write_timeout(t);
                    let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                    b.failures = 0;
                    b.not_before = None;
                    return Ok(Conn {
                        conn,
                        client_id: None,
                    });
                }
                Err(e) => {
                    {
                        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                        b.failures = b.failures.saturating_add(1);
                        let delay = Duration::from_millis(20u64 << b.failures.min(6))
                            .min(Duration::from_secs(1));
                        b.not_before = Some(Instant::now() + delay);
                    }
                    if Instant::now() >= limit {
                        return Err(map_err(&self.target, "connect", e));
                    }
                    last = Some(e);
                }
            }
        }
    }

    /// Returns a healthy connection to the pool.
    fn release(&self, c: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.0 == std::process::id() && pool.1.len() < 8 {
            pool.1.push(c);
        }
    }

    /// Runs `f` on a connection: a broken connection is dropped (the next
    /// call reconnects), a healthy one goes back to the pool.
    fn with_conn<R>(
        &self,
        op: &str,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Conn) -> std::result::Result<R, RedisError>,
    ) -> Result<R> {
        let mut c = self.conn(deadline)?;
        match f(&mut c) {
            Ok(r) => {
                self.release(c);
                Ok(r)
            }
            Err(e) => {
                if !is_broken(&e) {
                    self.release(c);
                }
                Err(map_err(&self.target, op, e))
            }
        }
    }

    /// Runs one of the scripts with the six keys, the prefix, and the
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
        self.with_conn(op, deadline, |c| inv.invoke(&mut c.conn))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Waits for a token on `which` for at most `hint_ms` (a lease expiry,
    /// -1 if none), the deadline, and [`SAFETY_SLICE`]. Returns `false` if
    /// the deadline has passed.
    fn wait(&self, which: Token, block: Block, hint_ms: i64) -> Result<bool> {
        let key = match which {
            Token::Avail => &self.keys[2],
            Token::Space => &self.keys[3],
            Token::Zero => &self.keys[5],
        };
        Ok(self.blpop(key, block, hint_ms)?.is_some())
    }

    /// `BLPOP key` for at most `hint_ms` (if not -1), the deadline, and
    /// [`SAFETY_SLICE`]; `None` if the deadline had passed (nothing waited),
    /// else the reply (`Nil` when the slice ran out).
    fn blpop(&self, key: &str, block: Block, hint_ms: i64) -> Result<Option<Value>> {
        let deadline = match block {
            Block::No => return Ok(None),
            Block::Forever => None,
            Block::Until(d) => Some(d),
        };
        let now = Instant::now();
        let mut slice = SAFETY_SLICE;
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
        let mut c = self.conn(deadline)?;
        if c.client_id.is_none() {
            match ::redis::cmd("CLIENT").arg("ID").query::<i64>(&mut c.conn) {
                Ok(id) => c.client_id = Some(id),
                Err(e) => return Err(map_err(&self.target, "CLIENT ID", e)),
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
            let _ = c
                .conn
                .set_read_timeout(Some(slice + self.target.io_timeout));
            let r = ::redis::cmd("BLPOP")
                .arg(key)
                .arg(secs)
                .query::<Value>(&mut c.conn);
            let _ = c.conn.set_read_timeout(Some(self.target.io_timeout));
            r
        };
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&b| b != id);
        match result {
            Ok(v) => {
                self.release(c);
                if self.closed.load(Ordering::Relaxed) {
                    // Do not lose an item popped just as the handle closed.
                    if key == self.keys[0] {
                        if let Some(item) = popped(&v) {
                            self.stash(std::iter::once(item));
                        }
                    }
                    return Err(Error::Closed);
                }
                Ok(Some(v))
            }
            Err(e) => {
                if !is_broken(&e) {
                    self.release(c);
                }
                Err(map_err(&self.target, "BLPOP", e))
            }
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
                let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
                ids.check_pid();
                let seq = match ids.failed_put {
                    Some((s, fh)) if fh == h => s,
                    _ => {
                        ids.seq += 1;
                        ids.seq
                    }
                };
                (ids.producer.clone(), seq)
            };
            let joinable = u8::from(self.kind == Kind::Joinable);
            let deadline = match block {
                Block::Until(d) => Some(d),
                _ => None,
            };
            let r: Result<i64> = self.script("put", &PUT, deadline, |inv| {
                inv.arg(self.maxsize).arg(joinable).arg(&producer).arg(seq);
                for item in chunk {
                    inv.arg(*item);
                }
            });
            let n = {
                let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Takes up to `max` items (encoded), waiting for one as `block` allows.
    pub(crate) fn get(&self, max: usize, block: Block) -> Result<Vec<Vec<u8>>> {
        self.check_open()?;
        {
            let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
            if !stash.is_empty() {
                let n = max.max(1).min(stash.len());
                return Ok(stash.drain(..n).collect());
            }
        }
        let joinable = u8::from(self.kind == Kind::Joinable);
        let lease_ms = self.target.lease.as_millis() as u64;
        let max = max.clamp(1, CHUNK);
        if self.kind == Kind::Queue && self.maxsize == 0 {
            return self.get_plain(max, block);
        }
        loop {
            let consumer = {
                let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
                ids.check_pid();
                ids.consumer.clone()
            };
            let deadline = match block {
                Block::Until(d) => Some(d),
                _ => None,
            };
            let reply: Vec<Value> = self.script("get", &GET, deadline, |inv| {
                inv.arg(max)
                    .arg(joinable)
                    .arg(&consumer)
                    .arg(lease_ms)
                    .arg(self.maxsize);
            })?;
            let status = reply.first().map_or(0, int);
            let hint = reply.get(1).map_or(-1, int);
            if status == 1 {
                if self.kind == Kind::Joinable {
                    self.start_heartbeat(&consumer);
                }
                return Ok(reply
                    .into_iter()
                    .skip(2)
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    })
                    .collect());
            }
            if !self.wait(Token::Avail, block, hint)? {
                return Err(Error::Empty);
            }
        }
    }

    /// `get` on a plain unbounded queue: no lease, no space to signal, so it
    /// is `LPOP` or a `BLPOP` on the items list itself, one round trip like a
    /// hand-written Redis list queue.
    fn get_plain(&self, max: usize, block: Block) -> Result<Vec<Vec<u8>>> {
        let key = &self.keys[0];
        loop {
            if max > 1 || matches!(block, Block::No) {
                let v: Option<Vec<Vec<u8>>> = self.with_conn("LPOP", None, |c| {
                    ::redis::cmd("LPOP").arg(key).arg(max).query(&mut c.conn)
                })?;
                if let Some(items) = v.filter(|v| !v.is_empty()) {
                    return Ok(items);
                }
            }
            match self.blpop(key, block, -1)? {
                None => return Err(Error::Empty),
                Some(v) => {
                    if let Some(item) = popped(&v) {
                        return Ok(vec![item]);
                    }
                }
            }
        }
    }

    /// Keeps items taken but not handed out (they come first next time).
    pub(crate) fn stash(&self, items: impl IntoIterator<Item = Vec<u8>>) {
        let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
        for (i, item) in items.into_iter().enumerate() {
            stash.insert(i, item);
        }
    }

    /// Acknowledges this handle's oldest in-flight item.
    pub(crate) fn task_done(&self) -> Result<()> {
        let consumer = {
            let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            ids.check_pid();
            ids.consumer.clone()
        };
        let lease_ms = self.target.lease.as_millis() as u64;
        let r: i64 = self.script("task_done", &TASK_DONE, None, |inv| {
            inv.arg(&consumer).arg(lease_ms);
        })?;
        match r {
            0 => Err(Error::TaskDoneTooOften),
            _ => Ok(()),
        }
    }

    /// Waits until no task is outstanding; [`Error::Full`] when `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        loop {
            self.check_open()?;
            let deadline = match block {
                Block::Until(d) => Some(d),
                _ => None,
            };
            let reply: Vec<Value> = self.script("join", &JOIN, deadline, |_| {})?;
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
        let key = &self.keys[0];
        self.with_conn("LLEN", None, |c| {
            ::redis::cmd("LLEN").arg(key).query::<usize>(&mut c.conn)
        })
    }

    /// Tasks put and not yet acknowledged.
    pub(crate) fn unfinished(&self) -> Result<u64> {
        let key = &self.keys[1];
        self.with_conn("HGET", None, |c| {
            ::redis::cmd("HGET")
                .arg(key)
                .arg("unfinished")
                .query::<Option<i64>>(&mut c.conn)
        })
        .map(|v| v.unwrap_or(0).max(0) as u64)
    }

    /// Starts the thread that renews this consumer's lease every third of
    /// the lease while the process lives, unless one runs already (or the
    /// URL says `heartbeat=0`). A consumer's items then come back to the
    /// queue when its process dies (or drops the handle), not when a task
    /// merely takes longer than the lease.
    fn start_heartbeat(&self, consumer: &str) {
        if !self.target.heartbeat {
            return;
        }
        let pid = std::process::id();
        let mut slot = self.heartbeat.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(p, _)| *p == pid) {
            return;
        }
        let client = self.client.clone();
        let leases = self.keys[4].clone();
        let consumer = consumer.to_owned();
        let lease = self.target.lease;
        let io_timeout = self.target.io_timeout;
        let interval = (lease / 3).max(Duration::from_millis(10));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Heartbeat>>(1);
        let spawned = std::thread::Builder::new()
            .name("procq-redis-heartbeat".into())
            .spawn(move || {
                let Ok(me) = rx.recv() else { return };
                let mut conn: Option<Connection> = None;
                loop {
                    std::thread::park_timeout(interval);
                    if me.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if conn.is_none() {
                        conn = client.get_connection_with_timeout(io_timeout).ok();
                        if let Some(c) = &conn {
                            let _ = c.set_read_timeout(Some(io_timeout));
                            let _ = c.set_write_timeout(Some(io_timeout));
                        }
                    }
                    if let Some(c) = conn.as_mut() {
                        let renewed: std::result::Result<i64, RedisError> = RENEW
                            .key(&leases)
                            .arg(&consumer)
                            .arg(lease.as_millis() as u64)
                            .invoke(c);
                        if renewed.is_err() {
                            // Reconnect at the next tick; a lease renewed
                            // late is still renewed.
                            conn = None;
                        }
                    }
                }
            });
        // Without a thread the lease simply is not renewed (the pre-heartbeat
        // behaviour): nothing is lost, a slow task may be delivered twice.
        if let Ok(handle) = spawned {
            let beat = Arc::new(Heartbeat {
                stop: AtomicBool::new(false),
                thread: handle.thread().clone(),
            });
            let _ = tx.send(beat.clone());
            *slot = Some((pid, beat));
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
        let _ = self.with_conn("CLIENT UNBLOCK", None, |c| {
            for id in &ids {
                ::redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(*id)
                    .query::<i64>(&mut c.conn)?;
            }
            Ok(())
        });
    }
}

/// One connection to the server of `target`, for the inspection calls
/// (they run once, so they neither pool nor retry).
fn connect_once(url: &str, target: &Target) -> Result<Connection> {
    let client = Client::open(target.server.as_str())
        .map_err(|_| bad(url, "the redis client rejected this URL"))?;
    let conn = client
        .get_connection_with_timeout(target.io_timeout)
        .map_err(|e| map_err(target, "connect", e))?;
    let _ = conn.set_read_timeout(Some(target.io_timeout));
    let _ = conn.set_write_timeout(Some(target.io_timeout));
    Ok(conn)
}

/// Every key of the queue named by `target`: the six fixed ones, then the
/// per-consumer and per-producer ones found by `SCAN` (all share the
/// queue's hash tag, so one cluster node holds them all).
fn queue_keys(
    conn: &mut Connection,
    target: &Target,
) -> std::result::Result<Vec<String>, RedisError> {
    let prefix = format!("procq:{{{}}}", target.name);
    let mut keys: Vec<String> = ["items", "meta", "avail", "space", "leases", "zero"]
        .iter()
        .map(|k| format!("{prefix}:{k}"))
        .collect();
    let pattern = format!("{}:*", glob_escape(&prefix));
    let found: Vec<String> = ::redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(conn)?
        .collect::<std::result::Result<_, _>>()?;
    for k in found {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// `s` with the glob metacharacters of `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Statistics of the queue at `url`, without creating it: the fields a
/// Redis queue has (name, kind, maxsize, items, unfinished tasks,
/// fingerprint, consumers holding leases as `attached_processes`); the
/// shared-memory ones are 0.
pub(crate) fn stats(url: &str) -> Result<crate::Stats> {
    let target = Target::parse(url)?;
    let mut conn = connect_once(url, &target)?;
    let prefix = format!("procq:{{{}}}", target.name);
    let (meta, items, leased): (Vec<Option<String>>, u64, u64) = ::redis::pipe()
        .cmd("HMGET")
        .arg(format!("{prefix}:meta"))
        .arg(&["kind", "fingerprint", "maxsize", "unfinished", "version"])
        .cmd("LLEN")
        .arg(format!("{prefix}:items"))
        .cmd("ZCARD")
        .arg(format!("{prefix}:leases"))
        .query(&mut conn)
        .map_err(|e| map_err(&target, "stats", e))?;
    let field = |i: usize| meta.get(i).cloned().flatten();
    let Some(kind) = field(0) else {
        return Err(Error::NotFound(redact(url)));
    };
    let kind = match kind.as_str() {
        "2" => Kind::Joinable,
        _ => Kind::Queue,
    };
    let num = |i: usize| {
        field(i)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    let unfinished = if kind == Kind::Joinable {
        num(3)
    } else {
        items
    };
    Ok(crate::Stats {
        name: redact(url),
        kind,
        maxsize: num(2),
        items,
        unfinished_tasks: unfinished,
        bytes_used: 0,
        capacity_bytes: 0,
        max_capacity_bytes: 0,
        resident_bytes: 0,
        attached_processes: leased as usize,
        dead_processes: 0,
        persistent: true,
        created_unix_ms: 0,
        fingerprint: num(1),
        items_put: 0,
        items_got: 0,
        bytes_put: 0,
        bytes_got: 0,
        blocked_puts: 0,
        blocked_gets: 0,
        timeouts: 0,
        recoveries: 0,
        reclaimed_processes: 0,
    })
}

/// Deletes every key of the queue at `url`: its items, in-flight items and
/// bookkeeping. [`Error::NotFound`] if it has none.
pub(crate) fn remove(url: &str) -> Result<()> {
    let target = Target::parse(url)?;
    let mut conn = connect_once(url, &target)?;
    let keys = queue_keys(&mut conn, &target).map_err(|e| map_err(&target, "SCAN", e))?;
    let n: i64 = ::redis::cmd("DEL")
        .arg(&keys)
        .query(&mut conn)
        .map_err(|e| map_err(&target, "DEL", e))?;
    if n == 0 {
        return Err(Error::NotFound(redact(url)));
    }
    Ok(())
}

/// URLs of the procq queues in the database at `server`
/// (`redis://host:port/db`), sorted.
pub(crate) fn list(server: &str) -> Result<Vec<String>> {
    let base = server.trim_end_matches('/');
    // A server URL is a queue URL without the name: borrow its parser.
    let target = Target::parse(&format!("{base}/_"))?;
    let mut conn = connect_once(server, &target)?;
    let metas: Vec<String> = ::redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg("procq:{*}:meta")
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut conn)
        .and_then(|keys| keys.collect::<std::result::Result<Vec<String>, _>>())
        .map_err(|e| map_err(&target, "SCAN", e))?;
    let mut urls: Vec<String> = metas
        .iter()
        .filter_map(|k| k.strip_prefix("procq:{")?.strip_suffix("}:meta"))
        .map(|name| format!("{base}/{name}"))
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        let slot = self.heartbeat.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, beat)) = slot.take() {
            if pid == std::process::id() {
                beat.stop.store(true, Ordering::Release);
                beat.thread.unpark();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("redis://h:6379/0/jobs").unwrap();
        assert_eq!(t.server, "redis://h:6379/0");
        assert_eq!(t.name, "jobs");
        assert_eq!(t.lease, DEFAULT_LEASE);
        let t = Target::parse("redis://:pw@h/3/a.b?lease_ms=1500&timeout_ms=200").unwrap();
        assert_eq!(t.server, "redis://:pw@h/3");
        assert_eq!(t.lease, Duration::from_millis(1500));
        assert_eq!(t.io_timeout, Duration::from_millis(200));
        for bad in [
            "redis://h:6379/jobs",
            "redis://h:6379/0/",
            "redis://h/x/jobs",
            "redis:///0/jobs",
            "redis://h/0/a{b}",
            "redis://h/0/a/b",
            "redis://h/0/a?lease_ms=0",
            "redis://h/0/a?nope=1",
            "http://h/0/a",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://u:secret@h:1/0/q"), "redis://u:***@h:1/0/q");
        assert_eq!(redact("redis://:secret@h/0/q"), "redis://:***@h/0/q");
        assert_eq!(redact("redis://h/0/q"), "redis://h/0/q");
    }
}
