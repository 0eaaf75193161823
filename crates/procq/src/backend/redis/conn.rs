//! Connections: to one server or to a Redis Cluster, a small pool per
//! handle, reconnection with backoff, and the server checks made at open.
//!
//! A cluster connection is the `redis` crate's synchronous
//! `ClusterConnection`: it routes each command by its first key's slot,
//! follows `MOVED`/`ASK`, refreshes the slot map, and reconnects to a node
//! that restarted. Every key of one queue shares a hash tag, so all of a
//! queue's commands go to one node; the few commands without a key
//! (`CLIENT ID`, `CLIENT UNBLOCK`, `SCAN`, `INFO`, `CONFIG GET`) are routed
//! explicitly to the master of the queue's slot ([`Link::on_node`]).
//! Internal retries are capped (two, at most 200 ms apart): they are safe
//! because every state-changing script is idempotent (see `mod.rs`).

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ::redis::cluster::{ClusterClient, ClusterConfig, ClusterConnection};
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{Client, Cmd, Connection, ConnectionLike, RedisError, RedisResult, Value};

use super::deliveries::Id;
use super::url::{bad, Target};
use crate::error::{Error, Result};

/// Oldest server procq's scripts run on: `LPOP key count` (6.2),
/// `BLPOP` with a fractional timeout (6.0), `CLIENT UNBLOCK` (5.0).
pub(crate) const MIN_VERSION: (u32, u32) = (6, 2);

/// One connection: to a server, or to a cluster (one socket per master).
pub(crate) enum Link {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Link {
    pub(crate) fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Link::Single(c) => c,
            Link::Cluster(c) => &mut **c,
        }
    }

    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) {
        let _ = match self {
            Link::Single(c) => c.set_read_timeout(d),
            Link::Cluster(c) => c.set_read_timeout(d),
        };
    }

    fn set_write_timeout(&self, d: Option<Duration>) {
        let _ = match self {
            Link::Single(c) => c.set_write_timeout(d),
            Link::Cluster(c) => c.set_write_timeout(d),
        };
    }

    /// Runs two commands in one round trip (on a cluster, both must be in
    /// one slot).
    pub(crate) fn pair(&mut self, a: &Cmd, b: &Cmd) -> RedisResult<(Value, Value)> {
        let mut v = self.pipeline(&[a, b])?.into_iter();
        Ok((
            v.next().unwrap_or(Value::Nil),
            v.next().unwrap_or(Value::Nil),
        ))
    }

    /// Sends packed commands without reading their replies (one server
    /// only: a cluster connection reads each reply as it sends).
    pub(crate) fn send_packed(&mut self, bytes: &[u8]) -> RedisResult<()> {
        match self {
            Link::Single(c) => c.send_packed_command(bytes),
            Link::Cluster(_) => Err(RedisError::from((
                ::redis::ErrorKind::Client,
                "a cluster connection cannot send without reading",
            ))),
        }
    }

    /// Reads the next reply of commands sent with
    /// [`send_packed`](Self::send_packed); an error reply is an `Err`.
    pub(crate) fn recv(&mut self) -> RedisResult<Value> {
        match self {
            Link::Single(c) => c.recv_response()?.extract_error(),
            Link::Cluster(_) => Err(RedisError::from((
                ::redis::ErrorKind::Client,
                "a cluster connection has no reply to read",
            ))),
        }
    }

    /// Runs commands in one round trip (on a cluster, all in one slot);
    /// their replies in order.
    pub(crate) fn pipeline(&mut self, cmds: &[&Cmd]) -> RedisResult<Vec<Value>> {
        match self {
            Link::Single(c) => {
                let mut p = ::redis::pipe();
                for cmd in cmds {
                    p.add_command((*cmd).clone());
                }
                p.query(c)
            }
            Link::Cluster(c) => {
                let mut p = ::redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command((*cmd).clone());
                }
                let r = p.query(c);
                match r {
                    // The cluster client follows MOVED/ASK for a single
                    // command, but a pipeline's error replies come back as
                    // values, so a stale slot map would send every pipeline
                    // to the old owner until the caller gives up. Run them
                    // one by one: that follows the redirect, refreshes
                    // the map for the next pipeline, and a redirected
                    // command was never run, so nothing runs twice.
                    Err(e) if e.is_cluster_error() => cmds.iter().map(|cmd| cmd.query(c)).collect(),
                    other => other,
                }
            }
        }
    }

    /// Runs a command without a key on the node holding `slot` (on a single
    /// server, on that server).
    pub(crate) fn on_node(&mut self, cmd: &Cmd, slot: u16) -> RedisResult<Value> {
        match self {
            Link::Single(c) => cmd.query(c),
            Link::Cluster(c) => c.route_command(
                cmd,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                    slot,
                    SlotAddr::Master,
                ))),
            ),
        }
    }
}

/// Makes connections for one URL.
#[derive(Clone)]
pub(crate) enum Connector {
    Single(Client),
    Cluster(ClusterClient),
}

impl Connector {
    pub(crate) fn new(url: &str, target: &Target) -> Result<Connector> {
        #[cfg(feature = "redis-tls")]
        if target.tls {
            install_tls_provider();
        }
        if target.cluster {
            let infos = (0..target.nodes.len())
                .map(|i| target.connection_info(i))
                .collect::<Result<Vec<_>>>()?;
            ClusterClient::builder(infos)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .connection_timeout(target.io_timeout)
                .response_timeout(target.io_timeout)
                .build()
                .map(Connector::Cluster)
                .map_err(|_| bad(url, "the redis client rejected these cluster nodes"))
        } else {
            Client::open(target.connection_info(0)?)
                .map(Connector::Single)
                .map_err(|_| bad(url, "the redis client rejected this URL"))
        }
    }

    /// Connects within `budget` (TCP, TLS handshake, `AUTH`, `SELECT`: the
    /// crate sets the socket timeouts before the handshake); commands then
    /// time out after `io`.
    pub(crate) fn connect(&self, budget: Duration, io: Duration) -> RedisResult<Link> {
        let link = match self {
            Connector::Single(c) => Link::Single(c.get_connection_with_timeout(budget)?),
            Connector::Cluster(c) => Link::Cluster(Box::new(
                c.get_connection_with_config(
                    ClusterConfig::new()
                        .set_connection_timeout(budget)
                        .set_response_timeout(io),
                )?,
            )),
        };
        link.set_read_timeout(Some(io));
        link.set_write_timeout(Some(io));
        Ok(link)
    }
}

/// The server's version from its `INFO server` text if it is older than
/// [`MIN_VERSION`] (a text without one passes: the scripts then say what
/// they lack).
fn too_old(info: &str) -> Option<&str> {
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (have < MIN_VERSION).then_some(version)
}

/// An integer reply (or a number sent as a string); 0 otherwise.
pub(crate) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// A reply as text, if it is a string or a number.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Makes ring the process's rustls crypto provider unless one is set (a
/// program may install its own first; then that one is used).
#[cfg(feature = "redis-tls")]
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The cluster slot of `key` (CRC16/XMODEM of its hash tag, mod 16384), as
/// the Redis Cluster specification defines it.
pub(crate) fn slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tag = match b.iter().position(|&c| c == b'{') {
        Some(open) => match b[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &b[open + 1..open + 1 + len],
            _ => b,
        },
        None => b,
    };
    let mut crc: u16 = 0;
    for &byte in tag {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// A pooled connection and the `CLIENT ID` the server gave it (asked for
/// only before its first blocking command, to be able to `CLIENT UNBLOCK` it).
pub(crate) struct Conn {
    pub(crate) link: Link,
    pub(crate) client_id: Option<i64>,
    /// An acknowledgement sent on this connection whose reply is not read
    /// yet (see `acks.rs`): read before anything else uses the connection
    /// (`Pool::settle`, in `owed.rs`).
    pub(crate) pending: Option<Pending>,
}

/// An acknowledgement sent without waiting for its reply.
pub(crate) struct Pending {
    /// The items it acknowledges.
    pub(crate) ids: Vec<Id>,
    /// The command as sent (sent again if the server lost the script).
    pub(crate) packed: Vec<u8>,
    /// When it was sent: the heartbeat reads a reply nobody read for a tick.
    pub(crate) sent: Instant,
}

/// Which pooled connection [`Pool::take`] may hand out when every one owes
/// an acknowledgement's reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Any.
    Any,
    /// None while fewer than two do: a fresh connection instead.
    Settled,
}

/// Reconnection backoff, shared by the calls of one handle.
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

/// The connections of one handle: taken by a call, given back when healthy,
/// dropped when broken (the next call reconnects).
pub(crate) struct Pool {
    pub(crate) target: Target,
    connector: Connector,
    /// The cluster slot of the queue's keys (unused on a single server).
    pub(crate) slot: u16,
    pub(super) conns: Mutex<(u32, Vec<Conn>)>,
    backoff: Mutex<Backoff>,
    /// Items whose acknowledgement was sent without waiting and then failed
    /// (its reply lost or an error): sent again, synchronously, by the
    /// handle's heartbeat or its next `task_done`, `join` or drop.
    pub(super) owed: Mutex<Vec<Id>>,
    /// Held while owed acknowledgements are read and sent again (`owed.rs`):
    /// a dropped handle waits for its heartbeat's round to end.
    pub(super) flushing: Mutex<()>,
    /// Whether an acknowledgement ran through this pool and waited for its
    /// reply (which loads the script on the server): only then are they
    /// sent without waiting.
    pub(crate) acks_loaded: std::sync::atomic::AtomicBool,
}

/// What a failed Redis call becomes: `Io` for transport problems (with the
/// matching `io::ErrorKind`), `InvalidQueue` for a server-side refusal.
pub(crate) fn map_err(target: &Target, op: &str, e: RedisError) -> Error {
    let context = format!("redis {op} on {}", target.server_display());
    if e.is_timeout() {
        Error::io(context, io::Error::new(io::ErrorKind::TimedOut, e))
    } else if e.is_connection_refusal() {
        Error::io(context, io::Error::new(io::ErrorKind::ConnectionRefused, e))
    } else if e.is_io_error() || e.is_connection_dropped() {
        Error::io(context, io::Error::new(io::ErrorKind::ConnectionReset, e))
    } else if is_transient(&e) {
        Error::io(context, io::Error::new(io::ErrorKind::ResourceBusy, e))
    } else {
        Error::InvalidQueue {
            name: target.name.clone(),
            reason: format!("{context}: {e}"),
        }
    }
}

/// Whether `e` is a socket call interrupted by a signal: on Linux a read or
/// write on a socket with a timeout fails with `EINTR` when the process is
/// stopped (SIGSTOP, Ctrl-Z) and continued. The connection stays usable:
/// the `redis` crate skips the interrupted command's reply when it comes.
pub(crate) fn is_interrupted(e: &RedisError) -> bool {
    let Some(src) = std::error::Error::source(e) else {
        return false;
    };
    // The crate keeps the io::Error behind an `Arc<dyn Error>`.
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let io = src.downcast_ref::<io::Error>().or_else(|| {
        src.downcast_ref::<Shared>()
            .and_then(|inner| inner.downcast_ref::<io::Error>())
    });
    io.is_some_and(|e| e.kind() == io::ErrorKind::Interrupted)
}

/// Whether `e` is a state the server leaves by itself soon: loading its
/// dataset after a restart (`LOADING`), a replica's master down
/// (`MASTERDOWN`), a write reaching a replica just demoted by a failover
/// (`READONLY`), or a cluster slot moving, down, or redirected more often
/// than the cluster client retried (`TRYAGAIN`, `CLUSTERDOWN`, `MOVED`,
/// `ASK`). Calls retry these until their time runs out.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    use ::redis::{ErrorKind, ServerErrorKind};
    e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// Whether the connection that produced `e` must be thrown away.
pub(crate) fn is_broken(e: &RedisError) -> bool {
    !is_interrupted(e) && is_dead(e)
}

fn is_dead(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

impl Pool {
    pub(crate) fn new(url: &str, target: Target) -> Result<Pool> {
        let connector = Connector::new(url, &target)?;
        let slot = slot(&target.prefix());
        Ok(Pool {
            target,
            connector,
            slot,
            conns: Mutex::new((std::process::id(), Vec::new())),
            backoff: Mutex::new(Backoff {
                failures: 0,
                not_before: None,
            }),
            owed: Mutex::new(Vec::new()),
            flushing: Mutex::new(()),
            acks_loaded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A pool of its own (no connections yet) for the same queue.
    pub(crate) fn fresh(&self) -> Pool {
        Pool {
            target: self.target.clone(),
            connector: self.connector.clone(),
            slot: self.slot,
            conns: Mutex::new((std::process::id(), Vec::new())),
            backoff: Mutex::new(Backoff {
                failures: 0,
                not_before: None,
            }),
            owed: Mutex::new(Vec::new()),
            flushing: Mutex::new(()),
            acks_loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    pub(crate) fn map_err(&self, op: &str, e: RedisError) -> Error {
        map_err(&self.target, op, e)
    }

    /// Takes a pooled connection, or connects (with backoff between failed
    /// attempts) until `deadline` or the I/O timeout, whichever is first.
    /// One that owes no acknowledgement's reply is taken first; if every
    /// pooled one owes one, a fresh one is made rather than wait for that
    /// reply (the next joinable `get` reads it with its own, see
    /// [`after_pending`](Self::after_pending)), up to two owing ones; then
    /// an owed reply is read first.
    pub(crate) fn conn(&self, deadline: Option<Instant>) -> Result<Conn> {
        loop {
            let mut c = self.take(deadline, Take::Settled)?;
            if self.settle(&mut c) {
                return Ok(c);
            }
        }
    }

    /// Takes a pooled connection (one that owes no acknowledgement's reply
    /// if there is one) or connects; the caller reads an owed reply
    /// ([`settle`](Self::settle)).
    pub(crate) fn conn_unsettled(&self, deadline: Option<Instant>) -> Result<Conn> {
        self.take(deadline, Take::Any)
    }

    fn take(&self, deadline: Option<Instant>, how: Take) -> Result<Conn> {
        {
            let mut pool = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            if pool.0 != std::process::id() {
                // Forked: the inherited sockets (and the replies owed on
                // them) belong to the parent.
                for c in &mut pool.1 {
                    c.pending = None;
                }
                pool.1.clear();
                pool.0 = std::process::id();
            }
            if let Some(i) = pool.1.iter().rposition(|c| c.pending.is_none()) {
                return Ok(pool.1.remove(i));
            }
            if how == Take::Any || pool.1.len() >= 2 {
                if let Some(c) = pool.1.pop() {
                    return Ok(c);
                }
            }
        }
        let io_timeout = self.target.io_timeout;
        let now = Instant::now();
        let limit = deadline.map_or(now + io_timeout, |d| d.min(now + io_timeout));
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
                        return Err(self.map_err("connect", e));
                    }
                    return Err(Error::io(
                        format!("redis connect to {}", self.target.server_display()),
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
            match self.connector.connect(budget, io_timeout) {
                Ok(link) => {
                    let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                    b.failures = 0;
                    b.not_before = None;
                    return Ok(Conn {
                        link,
                        client_id: None,
                        pending: None,
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
                        return Err(self.map_err("connect", e));
                    }
                    last = Some(e);
                }
            }
        }
    }

    /// Returns a healthy connection to the pool (one the pool has no room
    /// for is dropped, its owed reply read first).
    pub(crate) fn release(&self, mut c: Conn) {
        let mut pool = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if pool.0 != std::process::id() {
            c.pending = None; // a forked child's: the parent reads it
        } else if pool.1.len() < 8 {
            pool.1.push(c);
            return;
        }
        drop(pool);
        self.settle(&mut c);
    }

    /// Runs `f` on a connection: a broken connection is dropped (the next
    /// call reconnects), a healthy one goes back to the pool. Every command
    /// procq sends this way is idempotent (or loses nothing more by being
    /// repeated), so two failures are retried on the same connection: a
    /// call interrupted by a stop and continue of this process (see
    /// [`is_interrupted`]), once; and, until the I/O timeout (or the
    /// deadline) runs out, a server state that passes ([`is_transient`]:
    /// a server loading its data after a restart, a cluster slot in
    /// migration, where a script's keys are split between two nodes until
    /// the slot is moved).
    pub(crate) fn with_conn<R>(
        &self,
        op: &str,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<R, RedisError>,
    ) -> Result<R> {
        let start = Instant::now();
        let limit = deadline.map_or(start + self.target.io_timeout, |d| {
            d.min(start + self.target.io_timeout)
        });
        let mut c = self.conn(deadline)?;
        let mut r = f(&mut c);
        let mut interrupted = false;
        loop {
            match &r {
                Err(e) if is_interrupted(e) && !interrupted => interrupted = true,
                Err(e) if is_transient(e) && Instant::now() < limit => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
            r = f(&mut c);
        }
        match r {
            Ok(r) => {
                self.release(c);
                Ok(r)
            }
            Err(e) => {
                if !is_broken(&e) {
                    self.release(c);
                }
                Err(self.map_err(op, e))
            }
        }
    }

    /// Refuses a server procq cannot promise anything on: older than
    /// [`MIN_VERSION`], or (unless the URL says `allow_eviction=1`) with a
    /// `maxmemory-policy` other than `noeviction`, under which Redis deletes
    /// keys (items included) when memory runs out. Checked once per process
    /// and server; a server that refuses `CONFIG GET` (managed services
    /// often rename it) is taken as it is.
    pub(crate) fn check_server(&self) -> Result<()> {
        static CHECKED: LazyLock<Mutex<HashSet<(String, bool)>>> = LazyLock::new(Mutex::default);
        let key = (self.target.server_display(), self.target.allow_eviction);
        if CHECKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let slot = self.slot;
        let (info, policy) = self.with_conn("INFO", None, |c| {
            let info = c.link.on_node(::redis::cmd("INFO").arg("server"), slot)?;
            let policy = c.link.on_node(
                ::redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"),
                slot,
            );
            Ok((info, policy))
        })?;
        let info = match &info {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::VerbatimString { text, .. } => text.clone(),
            _ => String::new(),
        };
        if let Some(version) = too_old(&info) {
            return Err(Error::invalid(
                &self.target.name,
                format!(
                    "{} runs Redis {version}; procq needs Redis {}.{} or newer",
                    self.target.server_display(),
                    MIN_VERSION.0,
                    MIN_VERSION.1
                ),
            ));
        }
        if !self.target.allow_eviction {
            if let Some(p) = policy.ok().and_then(|v| config_value(&v)) {
                if p != "noeviction" {
                    return Err(Error::invalid(
                        &self.target.name,
                        format!(
                            "{} has maxmemory-policy {p}: when memory runs out Redis may \
                             evict this queue's keys (items, in-flight items, put \
                             idempotency records); set maxmemory-policy noeviction, or add \
                             allow_eviction=1 to the URL to accept that",
                            self.target.server_display()
                        ),
                    ));
                }
            }
        }
        CHECKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }
}

/// The value of a one-parameter `CONFIG GET` reply (RESP2 array or RESP3 map).
fn config_value(v: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match v {
        Value::Array(kv) => kv.get(1).and_then(text),
        Value::Map(kv) => kv.first().and_then(|(_, v)| text(v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_6_2_are_refused() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert_eq!(too_old(&info("6.0.16")), Some("6.0.16"));
        assert_eq!(too_old(&info("5.0.7")), Some("5.0.7"));
        assert_eq!(too_old(&info("6.2.0")), None);
        assert_eq!(too_old(&info("7.0.15")), None);
        assert_eq!(too_old(&info("10.1.0")), None);
        assert_eq!(too_old("# Server\r\n"), None);
    }

    #[test]
    fn passing_server_states_are_retried_and_refusals_are_not() {
        use ::redis::{ErrorKind, ServerErrorKind};
        let server = |k| RedisError::from((ErrorKind::Server(k), "x"));
        for k in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::ReadOnly,
        ] {
            assert!(is_transient(&server(k)) && !is_broken(&server(k)));
        }
        assert!(!is_transient(&server(ServerErrorKind::ResponseError)));
        assert!(!is_transient(&server(ServerErrorKind::NoScript)));
    }

    #[test]
    fn interrupted_calls_are_recognised() {
        let eintr = RedisError::from(io::Error::from(io::ErrorKind::Interrupted));
        assert!(is_interrupted(&eintr) && !is_broken(&eintr));
        let reset = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(!is_interrupted(&reset) && is_broken(&reset));
    }

    #[test]
    fn slots_match_the_cluster_specification() {
        // Values from CLUSTER KEYSLOT on a real server.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("procq:{jobs}:items"), slot("jobs"));
        assert_eq!(slot("procq:{jobs}.dead:meta"), slot("procq:{jobs}:meta"));
        assert_eq!(slot("{}x"), slot("{}x")); // empty tag: the whole key
    }
}
