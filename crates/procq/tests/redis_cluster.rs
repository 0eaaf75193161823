//! The Redis backend on a Redis Cluster (`redis+cluster://`), against the
//! 3-master cluster that `scripts/test.d/50-redis.sh` starts on loopback
//! and names in `PROCQ_REDIS_CLUSTER_URL`
//! (`redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`). Without
//! `PROCQ_REDIS_URL` every test prints why it skips; with a server but no
//! cluster they fail, so that a run never passes without testing the
//! cluster. Two tests change the shared cluster (a node restart, a slot
//! migration): 50-redis.sh runs this file with one test thread.
#![cfg(feature = "redis")]

mod common;
mod contract_support;
mod redis_support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{role, spawn, wait_ok};
use procq::{Error, JoinableQueue, Queue};
use redis_support::{authority, fresh, server};

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    let a = |i: usize| args[i].as_str();
    match role.as_str() {
        "count" => {
            // The article's token counter: the item is the right to add one.
            let q = Queue::<u64>::open(a(0)).unwrap();
            let loops: u64 = a(1).parse().unwrap();
            for _ in 0..loops {
                let v = q.get_timeout(Duration::from_secs(30)).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                q.put(&(v + 1)).unwrap();
            }
        }
        other => contract_support::run_role(other, &args),
    }
}

/// `redis+cluster://127.0.0.1:P1,…` of the 3-master cluster `50-redis.sh`
/// starts. `None` only where every Redis test skips; a run with a server
/// but no cluster fails rather than pass without testing the cluster.
fn cluster() -> Option<String> {
    match std::env::var("PROCQ_REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            server()?;
            panic!(
                "PROCQ_REDIS_CLUSTER_URL is not set: the cluster tests need the Redis Cluster \
                 that scripts/test.d/50-redis.sh starts (redis+cluster://127.0.0.1:P1,…)"
            );
        }
    }
}

/// A plain connection to one cluster node.
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// The port of the master that holds the queue `name`'s keys.
fn master_of(cluster: &str, name: &str) -> u16 {
    let first: u16 = authority(cluster)
        .split(',')
        .next()
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap();
    let mut con = node(first);
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("procq:{{{name}}}:items"))
        .query(&mut con)
        .unwrap();
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
    for r in ranges {
        let redis::Value::Array(r) = r else { continue };
        let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) = (r.first(), r.get(1))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&slot) {
            if let Some(redis::Value::Array(m)) = r.get(2) {
                if let Some(redis::Value::Int(port)) = m.get(1) {
                    return *port as u16;
                }
            }
        }
    }
    panic!("no master holds slot {slot}");
}

/// `rediss+cluster://127.0.0.1:T1,…`: the same cluster's TLS ports
/// (`PROCQ_REDIS_TLS_CLUSTER_URL`, set by 50-redis.sh: its nodes listen on
/// a TLS port too, and their bus speaks TLS). `None` only where every
/// Redis test skips.
#[cfg(feature = "redis-tls")]
fn tls_cluster() -> Option<String> {
    match std::env::var("PROCQ_REDIS_TLS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            server()?;
            panic!(
                "PROCQ_REDIS_TLS_CLUSTER_URL is not set: this test needs the TLS ports of the \
                 Redis Cluster that scripts/test.d/50-redis.sh starts"
            );
        }
    }
}

/// The article's token counter through a queue at `base`: three processes
/// add 30 each. Returns the queue's URL, empty again.
fn token_counter(base: &str) -> String {
    let url = format!("{base}/{}", fresh("cluster-counter"));
    let q = Queue::<u64>::open_or_create(&url, 0).unwrap();
    q.put(&0).unwrap();
    let workers: Vec<Child> = (0..3).map(|_| spawn("count", &[&url, "30"])).collect();
    for mut w in workers {
        wait_ok(&mut w, Duration::from_secs(60));
    }
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 90);
    assert!(q.empty());
    url
}

#[test]
fn cluster_token_counter_across_processes() {
    let Some(base) = cluster() else { return };
    let url = token_counter(&base);
    // The queue's keys share one slot: every one of them is on one master.
    let name = url.rsplit('/').next().unwrap();
    let mut con = node(master_of(&base, name));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("procq:{{{name}}}:*"))
        .query(&mut con)
        .unwrap();
    assert!(keys.iter().any(|k| k.ends_with(":meta")), "{keys:?}");
    procq::remove(&url).unwrap();
}

#[test]
fn cluster_killed_consumer_task_is_redelivered_and_batches_work() {
    let Some(base) = cluster() else { return };
    killed_consumer_and_batches(&base);
}

/// `rediss+cluster://` on the cluster's TLS ports: the token counter, a
/// SIGKILLed consumer's task, batches and the listing (every node reached
/// over TLS, redirections included: a TLS client is told the nodes' TLS
/// ports); a plain `redis+cluster://` URL to those ports fails within its
/// `timeout_ms`.
#[cfg(feature = "redis-tls")]
#[test]
fn tls_cluster_counter_killed_consumer_and_batches() {
    let Some(base) = tls_cluster() else { return };
    assert!(base.starts_with("rediss+cluster://"), "{base}");
    procq::remove(&token_counter(&base)).unwrap();
    killed_consumer_and_batches(&base);
    let plain = format!(
        "redis+cluster://{}/{}?timeout_ms=1000",
        authority(&base),
        fresh("tls-cluster-plain")
    );
    let t = Instant::now();
    let err = Queue::<u64>::open(&plain).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
}

/// A SIGKILLed consumer's task comes back; batches, a bounded queue and
/// the listing work (on the cluster at `base`).
fn killed_consumer_and_batches(base: &str) {
    // A lease long enough that the test takes 12 before 11 comes back,
    // even on a loaded machine against fsynced nodes.
    let url = format!("{base}/{}?lease_ms=2000", fresh("cluster-kill"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let got = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("cluster-got")), 0).unwrap();
    q.put_many(&[11, 12]).unwrap();
    let mut holder = spawn("hold", &[&url, got.name()]);
    assert_eq!(got.get_timeout(Duration::from_secs(20)).unwrap(), 11);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 12);
    q.task_done().unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 11);
    assert!(q.join_timeout(Duration::from_millis(100)).is_err());
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    // Batches, the bounded path and the listing work the same on a cluster.
    q.put_many(&(0..2500).collect::<Vec<_>>()).unwrap();
    let mut n = 0;
    while n < 2500 {
        let batch = q.get_many_timeout(700, Duration::from_secs(5)).unwrap();
        n += batch.len();
        q.task_done_many(batch.len()).unwrap();
    }
    q.join_timeout(Duration::from_secs(5)).unwrap();
    let b =
        Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("cluster-bounded")), 2).unwrap();
    b.put(&1).unwrap();
    b.put(&2).unwrap();
    assert!(matches!(b.put_nowait(&3), Err(Error::Full)));
    assert_eq!(b.get().unwrap(), 1);
    let listed = procq::list_redis(base).unwrap();
    let plain = url.split('?').next().unwrap();
    assert!(listed.iter().any(|u| u == plain), "{listed:?}");
    assert_eq!(procq::stats(&url).unwrap().kind, procq::Kind::Joinable);
    for u in [plain, got.name(), b.name()] {
        procq::remove(u).unwrap();
    }
}

/// Runs alone (50-redis.sh): it restarts one master of the shared cluster.
#[test]
fn cluster_node_restart_is_survived() {
    let Some(base) = cluster() else { return };
    let name = fresh("cluster-restart");
    let url = format!("{base}/{name}?timeout_ms=1000&lease_ms=1000");
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    q.put_many(&[1, 2, 3]).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();

    // SIGKILL the master holding the queue, then start it again from its
    // configuration file (same port, data directory and node id; its
    // append-only file is fsynced on every write).
    let port = master_of(&base, &name);
    let mut con = node(port);
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (pid, config) = (field("process_id:"), field("config_file:"));
    assert!(!config.is_empty(), "the node runs without a config file");
    drop(con);
    // SAFETY: kill(2) on the redis-server this test's script started.
    assert_eq!(
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) },
        0
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(10), "node did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it is down: a clear error within the timeout, no hang.
    let t = Instant::now();
    let err = q.put(&4).unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let bin = std::env::var("PROCQ_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let status = Command::new(bin).arg(&config).status().unwrap(); // daemonizes
    assert!(status.success());
    let t = Instant::now();
    loop {
        let ok = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
            .is_ok_and(|i| i.contains("cluster_state:ok"));
        if ok {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "node did not rejoin");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same handle goes on: the retried put is enqueued once, nothing
    // acknowledged was lost, the item in flight is still in flight.
    let t = Instant::now();
    loop {
        match q.put(&4) {
            Ok(()) => break,
            Err(Error::Redis { .. }) if t.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let mut got = Vec::new();
    while let Ok(x) = q.get_timeout(Duration::from_millis(500)) {
        got.push(x);
        q.task_done().unwrap();
    }
    assert_eq!(got, [2, 3, 4]);
    q.join_timeout(Duration::from_secs(5)).unwrap();
    procq::remove(&url).unwrap();
}

/// Runs alone (50-redis.sh): it moves one slot of the shared cluster to
/// another master while a handle uses a queue in it.
#[test]
fn cluster_slot_migration_is_followed_ask_then_moved() {
    let Some(base) = cluster() else { return };
    let name = fresh("cluster-move");
    let url = format!("{base}/{name}?lease_ms=2000");
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    q.put_many(&[1, 2]).unwrap();
    assert_eq!(q.get().unwrap(), 1);

    let src = master_of(&base, &name);
    let ports: Vec<u16> = authority(&base)
        .split(',')
        .filter_map(|hp| hp.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .collect();
    let dst = *ports.iter().find(|&&p| p != src).unwrap();
    let id = |port: u16| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut node(port))
            .unwrap()
    };
    let (src_id, dst_id) = (id(src), id(dst));
    let mut s = node(src);
    let mut d = node(dst);
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("procq:{{{name}}}:items"))
        .query(&mut s)
        .unwrap();
    let setslot = |con: &mut redis::Connection, how: &str, id: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .exec(con)
            .unwrap();
    };
    setslot(&mut d, "IMPORTING", &src_id);
    setslot(&mut s, "MIGRATING", &dst_id);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(10_000)
        .query(&mut s)
        .unwrap();
    assert!(keys.iter().any(|k| k.contains(&name)), "{keys:?}");
    // A node whose cluster bus speaks TLS (tls-cluster yes, as 50-redis.sh
    // starts them) migrates over TLS too: to the target's TLS port then.
    let tls_port: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tls-port")
        .query(&mut d)
        .unwrap();
    let to = tls_port
        .get(1)
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p > 0)
        .unwrap_or(dst);
    redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(to)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys)
        .exec(&mut s)
        .unwrap();
    // Mid-migration the source answers ASK: single-key commands follow it.
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    // A script's keys are split between the nodes until the slot is moved
    // (Redis answers TRYAGAIN): the put waits for the end of the migration.
    let finish = std::thread::spawn({
        let (ports, dst_id) = (ports.clone(), dst_id.clone());
        move || {
            std::thread::sleep(Duration::from_millis(300));
            for p in &ports {
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&dst_id)
                    .exec(&mut node(*p))
                    .unwrap();
            }
        }
    });
    let t = Instant::now();
    q.put(&3).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    finish.join().unwrap();
    // Migration done: the old owner answers MOVED, which is followed.
    assert_eq!(master_of(&base, &name), dst);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 2);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 3);
    q.task_done_many(3).unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    procq::remove(&url).unwrap();
}

#[test]
fn cluster_shutdown_wakes_blocked_clients_and_drains() {
    let Some(cluster) = cluster() else { return };
    let name = fresh("shut");
    let url = format!("{cluster}/{name}");
    let joinable_url = format!("{cluster}/{}", fresh("shut-j"));
    let ready_url = format!("{cluster}/{}", fresh("shut-ready"));
    struct Cleanup(Vec<String>, Vec<Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for c in &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            for u in &self.0 {
                let _ = procq::remove(u);
            }
        }
    }
    let mut cleanup = Cleanup(
        vec![url.clone(), joinable_url.clone(), ready_url.clone()],
        vec![],
    );
    let q = Queue::<u64>::open_or_create(&url, 0).unwrap();
    let ready = Queue::<u64>::open_or_create(&ready_url, 0).unwrap();
    for _ in 0..2 {
        cleanup
            .1
            .push(spawn("get_until_shutdown", &[&url, &ready_url, "plain"]));
    }
    for _ in 0..2 {
        ready.get_timeout(Duration::from_secs(30)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    q.shutdown(false).unwrap();
    for c in &mut cleanup.1 {
        wait_ok(c, Duration::from_secs(30));
    }
    assert!(
        t.elapsed() < Duration::from_millis(1300),
        "{:?}",
        t.elapsed()
    );
    assert!(q.is_shutdown() && q.stats().unwrap().shutdown);
    assert!(matches!(q.put(&1), Err(Error::ShutDown)));
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));

    // A joinable queue: what remains is handed out, then the end; an
    // immediate shutdown then lets join return once the item held is done.
    let j = JoinableQueue::<u64>::open_or_create(&joinable_url, 0).unwrap();
    j.put_many(&[1, 2, 3]).unwrap();
    j.shutdown(false).unwrap();
    assert_eq!(j.get().unwrap(), 1);
    j.shutdown(true).unwrap();
    assert!(matches!(j.get(), Err(Error::ShutDown)));
    assert_eq!(j.unfinished_tasks().unwrap(), 1);
    j.task_done().unwrap();
    j.join_timeout(Duration::from_secs(5)).unwrap();
}
