//! `ls`, `stat`, `rm`, `gc`, `create`: read-outs and management, all
//! through `procq::stats`, `procq::list`, `procq::list_redis`,
//! `procq::remove` and `procq::collect_garbage`.
//!
//! A Redis queue (a URL) has no ring, no process table and no counters:
//! those fields are `null` in JSON and `-` in tables, and its name is shown
//! without a password.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::failure::Failure;

/// One queue as `ls`/`stat` show it. Field names are the stable JSON keys.
#[derive(Serialize)]
struct Row {
    name: String,
    /// `"Queue"` or `"JoinableQueue"`; absent if the queue is unreadable.
    kind: Option<&'static str>,
    maxsize: Option<u64>,
    items: Option<u64>,
    unfinished_tasks: Option<u64>,
    bytes_used: Option<u64>,
    capacity_bytes: Option<u64>,
    resident_bytes: Option<u64>,
    processes_alive: Option<usize>,
    processes_dead: Option<usize>,
    persistent: Option<bool>,
    age_seconds: Option<u64>,
    fingerprint: Option<String>,
    /// Why the queue could not be read (corrupt, foreign, other version).
    error: Option<String>,
}

fn kind_name(k: procq::Kind) -> &'static str {
    match k {
        procq::Kind::Joinable => "JoinableQueue",
        _ => "Queue",
    }
}

/// Whether the queue counts tasks (only a JoinableQueue has unfinished
/// tasks; the field is `null` in JSON and absent from tables otherwise).
fn joinable(s: &procq::Stats) -> bool {
    matches!(s.kind, procq::Kind::Joinable)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn row(name: &str) -> Row {
    row_of(name, procq::stats(name))
}

/// The row of the queue `name` from its statistics (or why it has none).
fn row_of(name: &str, stats: procq::Result<procq::Stats>) -> Row {
    match stats {
        // Redis: only what a Redis queue has; `s.name` is the URL without
        // its password.
        Ok(s) if is_url(name) => Row {
            name: s.name.clone(),
            kind: Some(kind_name(s.kind)),
            maxsize: Some(s.maxsize),
            items: Some(s.items),
            unfinished_tasks: joinable(&s).then_some(s.unfinished_tasks),
            bytes_used: None,
            capacity_bytes: None,
            resident_bytes: None,
            processes_alive: Some(s.attached_processes),
            processes_dead: None,
            persistent: Some(s.persistent),
            age_seconds: None,
            fingerprint: Some(fingerprint(s.fingerprint)),
            error: None,
        },
        Ok(s) => Row {
            name: name.to_owned(),
            kind: Some(kind_name(s.kind)),
            maxsize: Some(s.maxsize),
            items: Some(s.items),
            unfinished_tasks: joinable(&s).then_some(s.unfinished_tasks),
            bytes_used: Some(s.bytes_used),
            capacity_bytes: Some(s.capacity_bytes),
            resident_bytes: Some(s.resident_bytes),
            processes_alive: Some(s.attached_processes),
            processes_dead: Some(s.dead_processes),
            persistent: Some(s.persistent),
            age_seconds: Some(now_ms().saturating_sub(s.created_unix_ms) / 1000),
            fingerprint: Some(fingerprint(s.fingerprint)),
            error: None,
        },
        Err(e) => Row {
            name: shown(name),
            kind: None,
            maxsize: None,
            items: None,
            unfinished_tasks: None,
            bytes_used: None,
            capacity_bytes: None,
            resident_bytes: None,
            processes_alive: None,
            processes_dead: None,
            persistent: None,
            age_seconds: None,
            fingerprint: None,
            error: Some(e.to_string()),
        },
    }
}

fn fingerprint(f: u64) -> String {
    if f == 0 {
        "untyped".into()
    } else {
        format!("{f:016x}")
    }
}

/// Bytes as people read them.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| Failure::op(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

/// The queue URLs of the Redis database `server` (`redis://host:port/db`),
/// or of a Redis Cluster (`redis+cluster://host:port[,host:port…]`).
#[cfg(feature = "redis")]
fn redis_queues(server: &str) -> Result<Vec<String>, Failure> {
    // A database URL: scheme, authority, and a number as its only path
    // segment (a queue URL here is a mistake worth a plain message); a
    // cluster URL may have no path. Options (`?password_env=…`) may follow.
    let main = server.split_once('?').map_or(server, |(m, _)| m);
    let cluster = main.contains("+cluster://");
    let path = main
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
        .map(|path| path.trim_end_matches('/'));
    let db_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !is_url(server) || !path.is_some_and(|p| db_ok(p) || (cluster && p.is_empty())) {
        return Err(Failure::usage(format!(
            "procq ls lists a Redis database: expected redis://host:port/db, got {:?}",
            shown(server)
        )));
    }
    Ok(procq::list_redis(server)?)
}

#[cfg(not(feature = "redis"))]
fn redis_queues(server: &str) -> Result<Vec<String>, Failure> {
    Err(Failure::usage(format!(
        "cannot list {:?}: this procq was built without its `redis` feature",
        shown(server)
    )))
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub(crate) fn ls(server: Option<&str>, json: bool) -> Result<(), Failure> {
    let names = match server {
        None => procq::list()?,
        Some(server) => redis_queues(server)?,
    };
    ls_names(&names, json)
}

/// `ls` of these queues only (the demo shows its own queue this way).
pub(crate) fn ls_names(names: &[String], json: bool) -> Result<(), Failure> {
    let rows: Vec<Row> = names.iter().map(|n| row(n)).collect();
    if json {
        return print_json(&rows);
    }
    let header = [
        "NAME",
        "KIND",
        "MAXSIZE",
        "ITEMS",
        "USED/CAPACITY",
        "PROCS",
        "AGE",
        "PERSIST",
        "TYPE",
    ];
    let mut lines = vec![header.map(String::from).to_vec()];
    for r in &rows {
        lines.push(match &r.error {
            Some(e) => vec![r.name.clone(), format!("error: {e}")],
            None => vec![
                r.name.clone(),
                r.kind.unwrap_or("").to_owned(),
                r.maxsize.map_or(String::new(), |m| {
                    if m == 0 {
                        "-".into()
                    } else {
                        m.to_string()
                    }
                }),
                r.items.unwrap_or(0).to_string(),
                match (r.bytes_used, r.capacity_bytes) {
                    (Some(used), Some(cap)) => format!("{}/{}", human(used), human(cap)),
                    _ => "-".into(),
                },
                match r.processes_dead {
                    Some(dead) => {
                        format!("{} alive, {dead} dead", r.processes_alive.unwrap_or(0))
                    }
                    // Redis: consumers holding leases.
                    None => format!("{} consumers", r.processes_alive.unwrap_or(0)),
                },
                or_dash(r.age_seconds.map(age)),
                or_dash(r.persistent.map(|p| if p { "yes" } else { "no" })),
                r.fingerprint.clone().unwrap_or_default(),
            ],
        });
    }
    print_columns(&lines)
}

/// Prints rows in aligned columns (the last cell of a row is not padded).
fn print_columns(lines: &[Vec<String>]) -> Result<(), Failure> {
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter(|l| l.len() > c + 1)
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 < line.len() {
                text.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            } else {
                text.push_str(cell);
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

fn stats_or_fail(name: &str) -> Result<procq::Stats, Failure> {
    if !is_url(name) {
        procq::validate_name(name)?;
    }
    Ok(procq::stats(name)?)
}

fn detail(s: &procq::Stats, redis: bool) -> Vec<Vec<String>> {
    let kv = |k: &str, v: String| vec![k.to_owned(), v];
    let mut rows = vec![
        kv("name", s.name.clone()),
        kv("kind", kind_name(s.kind).into()),
        kv(
            "maxsize",
            if s.maxsize == 0 {
                "unbounded".into()
            } else {
                s.maxsize.to_string()
            },
        ),
        kv("items", s.items.to_string()),
    ];
    if s.shutdown {
        rows.push(kv(
            "shut down",
            "yes (puts fail; gets drain what is left)".into(),
        ));
    }
    if joinable(s) {
        rows.push(kv("unfinished tasks", s.unfinished_tasks.to_string()));
    }
    if redis {
        rows.extend([
            kv(
                "consumers",
                format!("{} holding leases", s.attached_processes),
            ),
            kv("type", fingerprint(s.fingerprint)),
        ]);
        if joinable(s) {
            let limit = match s.max_deliveries {
                0 => "no max_deliveries".to_owned(),
                n => format!("max_deliveries {n}"),
            };
            rows.extend([
                kv(
                    "deliveries",
                    format!("{} ({} redelivered)", s.deliveries, s.redeliveries),
                ),
                kv("dead letters", format!("{} ({limit})", s.dead_letters)),
            ]);
        }
        return rows;
    }
    let r = row(&s.name);
    rows.extend([
        kv("bytes used", human(s.bytes_used)),
        kv(
            "capacity",
            format!(
                "{} (grows to {})",
                human(s.capacity_bytes),
                human(s.max_capacity_bytes)
            ),
        ),
        kv("resident", human(s.resident_bytes)),
        kv(
            "processes",
            format!("{} alive, {} dead", s.attached_processes, s.dead_processes),
        ),
        kv("persistent", s.persistent.to_string()),
        kv("age", age(r.age_seconds.unwrap_or(0))),
        kv("type", r.fingerprint.unwrap_or_default()),
        kv(
            "items put / got",
            format!("{} / {}", s.items_put, s.items_got),
        ),
        kv(
            "bytes put / got",
            format!("{} / {}", human(s.bytes_put), human(s.bytes_got)),
        ),
        kv(
            "blocked puts / gets",
            format!("{} / {}", s.blocked_puts, s.blocked_gets),
        ),
        kv("timeouts", s.timeouts.to_string()),
        kv("crash recoveries", s.recoveries.to_string()),
        kv("reclaimed processes", s.reclaimed_processes.to_string()),
    ]);
    rows
}

/// The JSON form of `stat`: the `ls` row plus the counters (`null` for a
/// Redis queue, which keeps none).
#[derive(Serialize)]
struct StatJson {
    #[serde(flatten)]
    row: Row,
    max_capacity_bytes: Option<u64>,
    /// `procq shutdown` (or `shutdown()` in a program) was called.
    shutdown: bool,
    items_put: Option<u64>,
    items_got: Option<u64>,
    bytes_put: Option<u64>,
    bytes_got: Option<u64>,
    blocked_puts: Option<u64>,
    blocked_gets: Option<u64>,
    timeouts: Option<u64>,
    recoveries: Option<u64>,
    reclaimed_processes: Option<u64>,
    /// Redis joinable queues: items handed out, put back after a lease
    /// ran out, and moved to `<name>.dead`; the queue's max_deliveries.
    deliveries: Option<u64>,
    redeliveries: Option<u64>,
    dead_letters: Option<u64>,
    max_deliveries: Option<u64>,
}

/// The JSON object of `stat` for these statistics.
fn stat_json(name: &str, s: &procq::Stats) -> StatJson {
    let shm = |v: u64| (!is_url(name)).then_some(v);
    let leases = |v: u64| (is_url(name) && joinable(s)).then_some(v);
    StatJson {
        row: row_of(name, Ok(s.clone())),
        max_capacity_bytes: shm(s.max_capacity_bytes),
        shutdown: s.shutdown,
        items_put: shm(s.items_put),
        items_got: shm(s.items_got),
        bytes_put: shm(s.bytes_put),
        bytes_got: shm(s.bytes_got),
        blocked_puts: shm(s.blocked_puts),
        blocked_gets: shm(s.blocked_gets),
        timeouts: shm(s.timeouts),
        recoveries: shm(s.recoveries),
        reclaimed_processes: shm(s.reclaimed_processes),
        deliveries: leases(s.deliveries),
        redeliveries: leases(s.redeliveries),
        dead_letters: leases(s.dead_letters),
        max_deliveries: leases(s.max_deliveries),
    }
}

/// One tick of `stat --watch --json`: the `stat` object plus its rates.
#[derive(Serialize)]
struct Tick {
    #[serde(flatten)]
    stat: StatJson,
    /// Milliseconds since the Unix epoch.
    unix_ms: u64,
    /// Items put per second since the last tick (`null` on Redis).
    rate_in: Option<f64>,
    /// Items got per second since the last tick (`null` on Redis).
    rate_out: Option<f64>,
    /// Net change of the item count per second since the last tick.
    net_rate: f64,
}

pub(crate) fn stat(name: &str, json: bool, watch: bool, count: Option<u64>) -> Result<(), Failure> {
    let redis = is_url(name);
    let s = stats_or_fail(name)?;
    if !watch {
        if json {
            return print_json(&stat_json(name, &s));
        }
        return print_columns(&detail(&s, redis));
    }
    // Redraw in place only on a terminal: a pipe or a file gets each tick
    // appended (a blank line between), never screen-clearing escapes.
    let tty = std::io::stdout().is_terminal();
    let mut prev = (Instant::now(), s.items_put, s.items_got, s.items);
    let mut redraws = 0u64;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let s = stats_or_fail(name)?;
        let now = Instant::now();
        let dt = now.duration_since(prev.0).as_secs_f64().max(1e-9);
        let net = (s.items as f64 - prev.3 as f64) / dt;
        let rate_in = s.items_put.saturating_sub(prev.1) as f64 / dt;
        let rate_out = s.items_got.saturating_sub(prev.2) as f64 / dt;
        prev = (now, s.items_put, s.items_got, s.items);
        let mut out = std::io::stdout().lock();
        if json {
            let tick = Tick {
                stat: stat_json(name, &s),
                unix_ms: now_ms(),
                rate_in: (!redis).then_some(rate_in),
                rate_out: (!redis).then_some(rate_out),
                net_rate: net,
            };
            serde_json::to_writer(&mut out, &tick).map_err(|e| Failure::op(e.to_string()))?;
            writeln!(out)?;
        } else {
            let mut lines = detail(&s, redis);
            if redis {
                // No put/get counters on Redis: the net change of the item count.
                lines.push(vec!["net rate".into(), format!("{net:+.0} items/s")]);
            } else {
                lines.push(vec![
                    "rate in / out".into(),
                    format!("{rate_in:.0} / {rate_out:.0} items/s"),
                ]);
            }
            if tty {
                // Home the cursor and clear: redraw in place.
                write!(out, "\x1b[H\x1b[2J")?;
            } else if redraws > 0 {
                writeln!(out)?;
            }
            drop(out);
            print_columns(&lines)?;
        }
        std::io::stdout().flush()?;
        redraws += 1;
        if count.is_some_and(|c| redraws >= c) {
            return Ok(());
        }
    }
}

pub(crate) fn rm(name: &str, force: bool, if_exists: bool) -> Result<(), Failure> {
    if if_exists {
        return match rm(name, force, false) {
            // Gone already, or removed by someone else meanwhile: what the
            // script wanted. A bad name or URL is still an error.
            Err(_) if matches!(procq::stats(name), Err(procq::Error::NotFound(_))) => Ok(()),
            other => other,
        };
    }
    if is_url(name) {
        // Redis keeps no process table: removed at once, whoever uses it.
        procq::remove(name)?;
        println!("removed {}", shown(name));
        return Ok(());
    }
    if !force {
        // Only the in-use check needs the queue's lock: --force skips it, so
        // that a queue whose lock is wedged (holder stopped) can be removed.
        let s = match stats_or_fail(name) {
            Err(_) if matches!(procq::stats(name), Err(procq::Error::LockBusy { .. })) => {
                return Err(Failure::op(format!(
                    "queue {name:?} is locked by a live process that does not let go \
                     (stopped?); use --force to remove it anyway"
                )))
            }
            other => other?,
        };
        if s.attached_processes > 0 {
            return Err(Failure::op(format!(
                "queue {name:?} is in use by {} live process(es); use --force to remove it anyway",
                s.attached_processes
            )));
        }
    } else if !is_url(name) {
        procq::validate_name(name)?;
    }
    procq::remove(name)?;
    println!("removed {name}");
    Ok(())
}

pub(crate) fn gc(dry_run: bool) -> Result<(), Failure> {
    let (removed, skipped) = if dry_run {
        let mut removed = Vec::new();
        let mut skipped = Vec::new();
        for name in procq::list()? {
            match procq::stats(&name) {
                Ok(s) if s.attached_processes == 0 && !s.persistent => removed.push(name),
                Ok(_) => {}
                Err(e) => skipped.push((name, e)),
            }
        }
        (removed, skipped)
    } else {
        let report = procq::collect_garbage_report()?;
        (report.removed, report.skipped)
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    for name in &removed {
        println!("{verb} {name}");
    }
    // Queues gc could not look into (another user's, a wedged lock, not a
    // procq segment) were left alone: say which and why, then go on.
    for (name, why) in &skipped {
        eprintln!("procq gc: skipped {name}: {why}");
    }
    if removed.is_empty() {
        println!("no orphaned queues");
    }
    Ok(())
}

pub(crate) fn create(name: &str, maxsize: usize, joinable: bool) -> Result<(), Failure> {
    if is_url(name) {
        // An existing queue is an error, as for shared memory: checked and
        // created in one step on the server, so of several `procq create`
        // racing on one name exactly one succeeds.
        let b = procq::Builder::new()
            .name(name)
            .maxsize(maxsize)
            .create_new(true);
        let q = if joinable {
            b.build_raw_joinable()?
        } else {
            b.build_raw()?
        };
        println!(
            "created {} (it stays on the server until procq rm)",
            q.display_name()
        );
        return Ok(());
    }
    let b = procq::Builder::new()
        .name(name)
        .maxsize(maxsize)
        .persistent(true);
    if joinable {
        b.build_raw_joinable()?;
    } else {
        b.build_raw()?;
    }
    println!("created {name} (persistent; remove with: procq rm {name})");
    Ok(())
}

/// Whether `name` is a Redis queue (or server) URL rather than a
/// shared-memory queue name (the core's `Address` decides).
pub(crate) fn is_url(name: &str) -> bool {
    procq::Address::is_url(name)
}

/// `name` fit for output: a URL's password replaced by `***` (the core's
/// `Address` shows queues the same way).
pub(crate) fn shown(name: &str) -> String {
    procq::Address::redact(name).into_owned()
}
