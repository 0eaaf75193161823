//! Queue URLs: parsing, the options they carry, the connection settings the
//! `redis` crate gets from them, and their redaction for messages.
//!
//! ```text
//! redis[s]://[user[:password]@]host[:port]/<db>/<name>[?options]
//! redis[s]+cluster://[user[:password]@]host:port[,host:port…]/[0/]<name>[?options]
//! ```
//!
//! Options: `lease_ms`, `timeout_ms`, `heartbeat=0|1`, `max_deliveries`,
//! `password_env=NAME`, `password_file=PATH`, `allow_eviction=1`. A password
//! taken from the environment or a file never appears in the URL, so the URL
//! can go on a command line (where `ps` shows it) or to a child process,
//! which reads the password from its own environment or the same file.

use std::fmt;
use std::time::Duration;

use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::error::{Error, Result};

/// Default lease of a joinable consumer's unacknowledged items.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default limit on connecting and on each non-blocking command.
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The suffix of a dead-letter queue's name.
pub(crate) const DEAD_SUFFIX: &str = ".dead";

/// A password, never shown by `Debug`.
#[derive(Clone, PartialEq)]
pub(crate) struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed queue URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// `rediss://`: TLS to every node.
    pub(crate) tls: bool,
    /// `redis+cluster://`: the nodes are seeds of a Redis Cluster.
    pub(crate) cluster: bool,
    /// `(host, port)` of the server, or of each cluster seed.
    pub(crate) nodes: Vec<(String, u16)>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    /// The database number (always 0 on a cluster).
    pub(crate) db: u32,
    /// The queue name (the last path segment).
    pub(crate) name: String,
    /// Lease of in-flight items.
    pub(crate) lease: Duration,
    /// Connect and command timeout.
    pub(crate) io_timeout: Duration,
    /// Whether a consumer's lease is renewed while its process lives.
    pub(crate) heartbeat: bool,
    /// Deliveries after which an unacknowledged item goes to `<name>.dead`.
    pub(crate) max_deliveries: Option<u64>,
    /// Accept a server whose `maxmemory-policy` may evict the queue's keys.
    pub(crate) allow_eviction: bool,
}

pub(crate) fn bad(url: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: redact(url),
        reason,
    }
}

/// The URL with any password replaced by `***`, for messages and `Debug`:
/// the rule of [`Address::redact`](crate::Address::redact), which a unit
/// test of `address.rs` holds this to (written out here so that the URL
/// parser, which `address.rs` uses, does not use it back).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// `%XX` escapes decoded (userinfo may carry them, as in any URL).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host[:port]` (IPv6 in brackets) with the default port 6379.
fn host_port(url: &str, s: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(url, "unclosed [ in an IPv6 host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad(url, "the URL names no host"));
    }
    let port = match port {
        None => 6379,
        Some(p) => p
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| bad(url, "the port must be a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// A password from `password_env=NAME` or `password_file=PATH`.
fn password_from(url: &str, key: &str, value: &str) -> Result<Secret> {
    if value.is_empty() {
        return Err(bad(url, "password_env and password_file need a value"));
    }
    let pw = if key == "password_env" {
        std::env::var(value).map_err(|_| {
            bad(
                url,
                "password_env names an environment variable that is not set (or not UTF-8)",
            )
        })?
    } else {
        let raw = std::fs::read_to_string(value)
            .map_err(|e| Error::io(format!("reading password_file {value:?}"), e))?;
        let trimmed = raw.strip_suffix('\n').unwrap_or(&raw);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    if pw.is_empty() {
        return Err(bad(
            url,
            "the password from password_env/password_file is empty",
        ));
    }
    Ok(Secret(pw))
}

impl Target {
    /// Parses a queue URL (see the module documentation).
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "expected redis://host:port/db/name"))?;
        let (tls, cluster) =
            match scheme {
                "redis" => (false, false),
                "rediss" => (true, false),
                "redis+cluster" => (false, true),
                "rediss+cluster" => (true, true),
                _ => return Err(bad(
                    url,
                    "the scheme must be redis://, rediss://, redis+cluster:// or rediss+cluster://",
                )),
            };
        #[cfg(not(feature = "redis-tls"))]
        if tls {
            return Err(bad(
                url,
                "rediss:// (TLS) needs procq's `redis-tls` cargo feature",
            ));
        }
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main
            .split_once('/')
            .ok_or_else(|| bad(url, "expected redis://host:port/db/name: no /db/name"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(bad(url, "the URL names no host"));
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pw) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw)),
                    None => (u, None),
                };
                let decode = |s: &str| {
                    percent_decode(s)
                        .ok_or_else(|| bad(url, "bad %-escape in the user or password"))
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let pw = match pw {
                    Some(p) if !p.is_empty() => Some(Secret(decode(p)?)),
                    _ => None,
                };
                (user, pw)
            }
        };
        let nodes = if cluster {
            hosts
                .split(',')
                .map(|h| host_port(url, h))
                .collect::<Result<Vec<_>>>()?
        } else {
            if hosts.contains(',') {
                return Err(bad(
                    url,
                    "several hosts need redis+cluster:// (a Redis Cluster)",
                ));
            }
            vec![host_port(url, hosts)?]
        };
        let (db, name) = match path.split_once('/') {
            Some((db, name)) => (db, name),
            None if cluster => ("0", path),
            None => return Err(bad(url, "expected redis://host:port/db/name: no /name")),
        };
        if db.is_empty() || !db.bytes().all(|b| b.is_ascii_digit()) || db.len() > 5 {
            return Err(bad(url, "the database must be a number, as in /0/name"));
        }
        let db: u32 = db.parse().unwrap_or(u32::MAX);
        if cluster && db != 0 {
            return Err(bad(url, "a Redis Cluster has only database 0"));
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
            tls,
            cluster,
            nodes,
            user,
            password,
            db,
            name: name.to_owned(),
            lease: DEFAULT_LEASE,
            io_timeout: DEFAULT_IO_TIMEOUT,
            heartbeat: true,
            max_deliveries: None,
            allow_eviction: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "heartbeat" | "allow_eviction" => {
                    let on = match value {
                        "1" => true,
                        "0" => false,
                        _ => return Err(bad(url, "heartbeat and allow_eviction take 0 or 1")),
                    };
                    if key == "heartbeat" {
                        target.heartbeat = on;
                    } else {
                        target.allow_eviction = on;
                    }
                }
                "password_env" | "password_file" => {
                    if target.password.is_some() {
                        return Err(bad(url, "the URL gives more than one password"));
                    }
                    target.password = Some(password_from(url, key, value)?);
                }
                "max_deliveries" => {
                    let n: u64 = value
                        .parse()
                        .ok()
                        .filter(|&n| (1..=1_000_000).contains(&n))
                        .ok_or_else(|| bad(url, "max_deliveries takes 1 to 1000000"))?;
                    if name.ends_with(DEAD_SUFFIX) {
                        return Err(bad(
                            url,
                            "a dead-letter queue (name ending in .dead) takes no max_deliveries",
                        ));
                    }
                    target.max_deliveries = Some(n);
                }
                "lease_ms" | "timeout_ms" => {
                    let ms: u64 = value
                        .parse()
                        .ok()
                        .filter(|&v| v > 0 && v <= 86_400_000)
                        .ok_or_else(|| bad(url, "lease_ms and timeout_ms take 1 to 86400000"))?;
                    if key == "lease_ms" {
                        target.lease = Duration::from_millis(ms);
                    } else {
                        target.io_timeout = Duration::from_millis(ms);
                    }
                }
                _ => {
                    return Err(bad(
                        url,
                        "unknown URL option (lease_ms, timeout_ms, heartbeat, max_deliveries, \
                         password_env, password_file, allow_eviction)",
                    ))
                }
            }
        }
        Ok(target)
    }

    /// Parses a server URL: a queue URL without the name
    /// (`redis://host:port/db`, `redis+cluster://host:port,…`).
    pub(crate) fn parse_server(server: &str) -> Result<Target> {
        let (base, query) = server.split_once('?').unwrap_or((server, ""));
        let base = base.trim_end_matches('/');
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Target::parse(&format!("{base}/_{q}"))
    }

    /// The server (or cluster) for messages: scheme, hosts and database,
    /// never a password.
    pub(crate) fn server_display(&self) -> String {
        let scheme = match (self.tls, self.cluster) {
            (false, false) => "redis",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (true, true) => "rediss+cluster",
        };
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        if self.cluster {
            format!("{scheme}://{}", hosts.join(","))
        } else {
            format!("{scheme}://{}/{}", hosts.join(","), self.db)
        }
    }

    /// Connection settings for node `i` (the server, or a cluster seed).
    pub(crate) fn connection_info(&self, i: usize) -> Result<ConnectionInfo> {
        let (host, port) = self.nodes[i].clone();
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(self.db));
        if let Some(u) = &self.user {
            redis = redis.set_username(u);
        }
        if let Some(Secret(p)) = &self.password {
            redis = redis.set_password(p);
        }
        addr.into_connection_info()
            .map(|info| info.set_redis_settings(redis))
            .map_err(|_| Error::InvalidName {
                name: self.server_display(),
                reason: "the redis client rejected this address",
            })
    }

    /// The key prefix of this queue: `procq:{name}`, every key of one queue
    /// sharing the hash tag `{name}` so that all of them (and so every
    /// script) live in one cluster slot. A dead-letter queue `jobs.dead`
    /// takes its source's tag, `procq:{jobs}.dead`, so that moving an item
    /// there stays within that slot too.
    pub(crate) fn prefix(&self) -> String {
        key_prefix(&self.name)
    }
}

/// The keys every script takes, after the queue's prefix (`common.lua`).
pub(crate) const KEY_NAMES: [&str; 8] = [
    "items", "meta", "avail", "space", "leases", "zero", "retry", "shut",
];

/// See [`Target::prefix`].
pub(crate) fn key_prefix(name: &str) -> String {
    match name.strip_suffix(DEAD_SUFFIX) {
        Some(stem) if !stem.is_empty() => format!("procq:{{{stem}}}{DEAD_SUFFIX}"),
        _ => format!("procq:{{{name}}}"),
    }
}

/// The queue name a `…:meta` key belongs to (inverse of [`key_prefix`]).
pub(crate) fn name_of_meta_key(key: &str) -> Option<String> {
    let inner = key.strip_prefix("procq:{")?;
    if let Some(name) = inner.strip_suffix("}:meta") {
        return Some(name.to_owned());
    }
    let stem = inner.strip_suffix(&format!("}}{DEAD_SUFFIX}:meta"))?;
    Some(format!("{stem}{DEAD_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("redis://h:6379/0/jobs").unwrap();
        assert_eq!(t.nodes, [("h".to_owned(), 6379)]);
        assert_eq!(
            (t.db, t.name.as_str(), t.cluster, t.tls),
            (0, "jobs", false, false)
        );
        assert_eq!(t.lease, DEFAULT_LEASE);
        assert_eq!(t.server_display(), "redis://h:6379/0");
        let t = Target::parse("redis://:p%40w@h/3/a.b?lease_ms=1500&timeout_ms=200").unwrap();
        assert_eq!(t.nodes, [("h".to_owned(), 6379)]);
        assert_eq!(t.password, Some(Secret("p@w".into())));
        assert_eq!(t.db, 3);
        assert_eq!(t.lease, Duration::from_millis(1500));
        assert_eq!(t.io_timeout, Duration::from_millis(200));
        let t = Target::parse("redis://u@[::1]:7000/0/q?max_deliveries=3").unwrap();
        assert_eq!(t.nodes, [("::1".to_owned(), 7000)]);
        assert_eq!((t.user.as_deref(), t.max_deliveries), (Some("u"), Some(3)));
        assert_eq!(t.server_display(), "redis://[::1]:7000/0");
        for bad in [
            "redis://h:6379/jobs",
            "redis://h:6379/0/",
            "redis://h/x/jobs",
            "redis:///0/jobs",
            "redis://h/0/a{b}",
            "redis://h/0/a/b",
            "redis://h/0/a?lease_ms=0",
            "redis://h/0/a?nope=1",
            "redis://h:0/0/a",
            "redis://h,g/0/a",
            "redis://h/0/a?max_deliveries=0",
            "redis://h/0/a.dead?max_deliveries=2",
            "redis://:pw@h/0/a?password_env=PATH",
            "redis://h/0/a?password_env=PROCQ_SURELY_UNSET_VARIABLE",
            "http://h/0/a",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_cluster_urls() {
        let t = Target::parse("redis+cluster://a:7000,b:7001/jobs").unwrap();
        assert!(t.cluster);
        assert_eq!(t.nodes, [("a".to_owned(), 7000), ("b".to_owned(), 7001)]);
        assert_eq!(t.name, "jobs");
        assert_eq!(t.server_display(), "redis+cluster://a:7000,b:7001");
        let t = Target::parse("redis+cluster://a:7000/0/jobs?lease_ms=5").unwrap();
        assert_eq!((t.name.as_str(), t.db), ("jobs", 0));
        assert!(Target::parse("redis+cluster://a:7000/1/jobs").is_err());
        let s = Target::parse_server("redis+cluster://a:7000,b:7001").unwrap();
        assert_eq!(s.nodes.len(), 2);
    }

    #[test]
    fn passwords_from_a_file_never_show() {
        let path = std::env::temp_dir().join(format!("procq-pw-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let url = format!("redis://u@h/0/q?password_file={}", path.display());
        let t = Target::parse(&url).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(t.password, Some(Secret("s3cret".into())));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(matches!(Target::parse(&url), Err(Error::Io { .. })));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://u:secret@h:1/0/q"), "redis://u:***@h:1/0/q");
        assert_eq!(redact("redis://:secret@h/0/q"), "redis://:***@h/0/q");
        assert_eq!(redact("redis://h/0/q"), "redis://h/0/q");
        assert_eq!(
            redact("redis+cluster://:s@a:1,b:2/q"),
            "redis+cluster://:***@a:1,b:2/q"
        );
    }

    #[test]
    fn dead_letter_queues_share_their_source_slot() {
        assert_eq!(key_prefix("jobs"), "procq:{jobs}");
        assert_eq!(key_prefix("jobs.dead"), "procq:{jobs}.dead");
        assert_eq!(key_prefix(".dead"), "procq:{.dead}");
        for name in ["jobs", "jobs.dead", "a.b", ".dead"] {
            let meta = format!("{}:meta", key_prefix(name));
            assert_eq!(name_of_meta_key(&meta).as_deref(), Some(name));
        }
    }
}
