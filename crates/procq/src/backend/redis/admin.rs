//! Inspection without a handle: statistics, removal and listing of queues
//! on a server or a cluster. Each runs once, so it neither pools nor
//! retries.

use std::sync::LazyLock;

use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{Cmd, RedisResult, Script, Value};

use super::conn::{int, map_err, slot, text, Connector, Link};
use super::url::{name_of_meta_key, redact, Target, KEY_NAMES};
use crate::error::{Error, Result};
use crate::kind::Kind;

/// Counters after a reap (see `stats.lua`).
static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("common.lua"),
        include_str!("stats.lua")
    ))
});

/// One connection to the server (or cluster) of `target`.
fn connect_once(url: &str, target: &Target) -> Result<Link> {
    Connector::new(url, target)?
        .connect(target.io_timeout, target.io_timeout)
        .map_err(|e| map_err(target, "connect", e))
}

/// Runs `cmd` on the cluster node at `host:port` (on a single server, on
/// that server).
fn on_address(link: &mut Link, cmd: &Cmd, host: &str, port: u16) -> RedisResult<Value> {
    match link {
        Link::Single(c) => cmd.query(c),
        Link::Cluster(c) => c.route_command(
            cmd,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.to_owned(),
                port,
            }),
        ),
    }
}

/// Every key matching `pattern` on one node (`SCAN`), through `run`.
fn scan(
    pattern: &str,
    mut run: impl FnMut(&Cmd) -> RedisResult<Value>,
) -> RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let reply = run(::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000))?;
        let Value::Array(parts) = reply else {
            return Ok(keys);
        };
        cursor = parts.first().map_or(0, int) as u64;
        if let Some(Value::Array(found)) = parts.get(1) {
            keys.extend(found.iter().filter_map(text));
        }
        if cursor == 0 {
            return Ok(keys);
        }
    }
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

/// Statistics of the queue at `url`, without creating it (expired leases
/// are reaped first, as by any call): the fields a Redis queue has (name, kind, maxsize, items, unfinished tasks,
/// fingerprint, consumers holding leases as `attached_processes`, and the
/// delivery counters of a joinable queue); the shared-memory ones are 0.
pub(crate) fn stats(url: &str) -> Result<crate::stats::Stats> {
    let target = Target::parse(url)?;
    let mut link = connect_once(url, &target)?;
    let prefix = target.prefix();
    let mut inv = STATS.prepare_invoke();
    for k in KEY_NAMES {
        inv.key(format!("{prefix}:{k}"));
    }
    inv.arg(&prefix);
    let reply: Option<(Vec<Option<String>>, u64, u64)> = inv
        .invoke(link.as_dyn())
        .map_err(|e| map_err(&target, "stats", e))?;
    let Some((meta, items, leased)) = reply else {
        return Err(Error::NotFound(redact(url)));
    };
    let field = |i: usize| meta.get(i).cloned().flatten();
    let kind = match field(0).unwrap_or_default().as_str() {
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
    Ok(crate::stats::Stats {
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
        shutdown: num(8) > 0,
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
        deliveries: num(4),
        redeliveries: num(5),
        dead_letters: num(6),
        max_deliveries: num(7),
    })
}

/// Deletes every key of the queue at `url`: its items, in-flight items and
/// bookkeeping (not its dead-letter queue, which is a queue of its own).
/// [`Error::NotFound`] if it has none.
pub(crate) fn remove(url: &str) -> Result<()> {
    let target = Target::parse(url)?;
    let mut link = connect_once(url, &target)?;
    let prefix = target.prefix();
    let node = slot(&prefix);
    let mut keys: Vec<String> = KEY_NAMES.iter().map(|k| format!("{prefix}:{k}")).collect();
    let found = scan(&format!("{}:*", glob_escape(&prefix)), |cmd| {
        link.on_node(cmd, node)
    })
    .map_err(|e| map_err(&target, "SCAN", e))?;
    for k in found {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let n: i64 = ::redis::cmd("DEL")
        .arg(&keys)
        .query(link.as_dyn())
        .map_err(|e| map_err(&target, "DEL", e))?;
    if n == 0 {
        return Err(Error::NotFound(redact(url)));
    }
    Ok(())
}

/// `(host, port)` of every master of a cluster, from `CLUSTER SLOTS`.
fn masters(link: &mut Link) -> RedisResult<Vec<(String, u16)>> {
    let reply = link.on_node(::redis::cmd("CLUSTER").arg("SLOTS"), 0)?;
    let mut out = Vec::new();
    if let Value::Array(ranges) = reply {
        for range in ranges {
            let Value::Array(r) = range else { continue };
            let Some(Value::Array(master)) = r.get(2) else {
                continue;
            };
            let host = master.first().and_then(text).unwrap_or_default();
            let port = master.get(1).map_or(0, int) as u16;
            if !host.is_empty() && port > 0 && !out.contains(&(host.clone(), port)) {
                out.push((host, port));
            }
        }
    }
    Ok(out)
}

/// URLs of the procq queues at `server` (`redis://host:port/db`, or
/// `redis+cluster://host:port,…` for every master of a cluster), sorted.
pub(crate) fn list(server: &str) -> Result<Vec<String>> {
    let target = Target::parse_server(server)?;
    // Listed URLs keep the options (a password_env, say) of the server URL.
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let base = base.trim_end_matches('/');
    let mut link = connect_once(server, &target)?;
    let nodes = if target.cluster {
        masters(&mut link).map_err(|e| map_err(&target, "CLUSTER SLOTS", e))?
    } else {
        target.nodes.clone()
    };
    let mut metas = Vec::new();
    for (host, port) in &nodes {
        let found = scan("procq:{*}*:meta", |cmd| {
            on_address(&mut link, cmd, host, *port)
        })
        .map_err(|e| map_err(&target, "SCAN", e))?;
        metas.extend(found);
    }
    let mut urls: Vec<String> = metas
        .iter()
        .filter_map(|k| name_of_meta_key(k))
        .map(|name| format!("{base}/{name}{query}"))
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}
