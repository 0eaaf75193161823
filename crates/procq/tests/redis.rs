//! The Redis backend (`--features redis`), against a real `redis-server`.
//!
//! `scripts/test.d/50-redis.sh` starts a server on a free 127.0.0.1 port and
//! sets `PROCQ_REDIS_URL` (`redis://127.0.0.1:PORT/0`) and
//! `PROCQ_REDIS_SERVER` (the binary, for the restart test, which runs its own
//! server). These are the Redis-only tests (faults, leases, URLs, TLS); the
//! semantics both backends share are in `tests/contract.rs`, which runs
//! them against every backend present. Without `PROCQ_REDIS_URL` every test
//! prints why it skips.
#![cfg(feature = "redis")]

mod common;
mod contract_support;
mod redis_support;

use std::collections::HashMap;
#[cfg_attr(not(feature = "redis-tls"), allow(unused_imports))]
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::wait_ok;
#[cfg_attr(not(feature = "redis-tls"), allow(unused_imports))]
use common::{role, spawn};
use contract_support::drain;
use procq::{Error, JoinableQueue, Queue};
use redis_support::{authority, free_port, fresh, server, LossyProxy, OwnServer, Server, TempDir};

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    contract_support::run_role(&role, &args);
}

/// A fresh queue on the server `base` with `maxsize`; `opts` are URL
/// options (the TLS test; the other tests of both backends are in
/// `tests/contract.rs`).
#[cfg(feature = "redis-tls")]
fn make<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    base: &str,
    tag: &str,
    maxsize: usize,
    opts: &str,
) -> Queue<T> {
    Queue::open_or_create(&format!("{base}/{}{opts}", fresh(tag)), maxsize).unwrap()
}

#[cfg(feature = "redis-tls")]
fn make_joinable(base: &str, tag: &str, opts: &str) -> JoinableQueue<u64> {
    JoinableQueue::open_or_create(&format!("{base}/{}{opts}", fresh(tag)), 0).unwrap()
}

#[test]
fn urls_types_and_kinds_are_checked() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}", fresh("kinds"));
    let q = Queue::<u64>::open_or_create(&url, 3).unwrap();
    assert_eq!(q.name(), url);
    assert!(matches!(
        Queue::<String>::open(&url),
        Err(Error::InvalidQueue { .. })
    ));
    assert!(matches!(
        JoinableQueue::<u64>::open(&url),
        Err(Error::InvalidQueue { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open_or_create(&url, 4),
        Err(Error::InvalidQueue { .. })
    ));
    assert_eq!(Queue::<u64>::open(&url).unwrap().maxsize(), 3);
    let st = q.stats().unwrap();
    assert_eq!((st.maxsize, st.items), (3, 0));
    assert!(!st.name.is_empty());
    let j = format!("{base}/{}", fresh("kinds-j"));
    JoinableQueue::<u64>::open_or_create(&j, 0).unwrap();
    Queue::<u64>::open(&j).unwrap(); // a plain handle may use a joinable queue
    for bad in [
        format!("{base}/a b"),
        format!("{base}/x?lease_ms=abc"),
        "redis://127.0.0.1:1/jobs".to_owned(),
    ] {
        assert!(
            matches!(Queue::<u64>::open(&bad), Err(Error::InvalidName { .. })),
            "{bad}"
        );
    }
    // A queue travels to another process as its URL.
    let bytes = postcard::to_allocvec(&q).unwrap();
    let back: Queue<u64> = postcard::from_bytes(&bytes).unwrap();
    q.put(&5).unwrap();
    assert_eq!(back.get().unwrap(), 5);
    // Debug never shows a password.
    let secret = Queue::<u64>::open(&format!(
        "redis://:hunter2@127.0.0.1:{}/0/x?timeout_ms=300",
        free_port()
    ));
    let msg = format!("{:?}", secret.unwrap_err());
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn unreachable_server_fails_fast_with_a_clear_error() {
    if server().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}/0/x?timeout_ms=500", free_port());
    let t = Instant::now();
    let err = Queue::<u64>::open(&url).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[test]
fn redis_restart_errors_then_recovers_and_loses_no_acknowledged_item() {
    if server().is_none() {
        return;
    }
    let mut own = OwnServer::start("procq-redis-restart", &[]);
    let url = format!("{}/stream?timeout_ms=500", own.base());
    let q = Queue::<u64>::open_or_create(&url, 0).unwrap();

    let mut acked = Vec::new();
    let mut errors = 0;
    let mut i = 0u64;
    let start = Instant::now();
    let mut restarted = None;
    while i < 400 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stream did not finish"
        );
        if i == 150 && restarted.is_none() {
            own.server.kill(); // crash in the middle of the stream
            restarted = Some(Instant::now());
        }
        if let Some(t) = restarted {
            if t.elapsed() > Duration::from_millis(700)
                && own.server.child.try_wait().unwrap().is_some()
            {
                own.server = Server::start(own.port, &own.dir.0);
                restarted = Some(t - Duration::from_secs(3600));
            }
        }
        let t = Instant::now();
        match q.put(&i) {
            Ok(()) => {
                acked.push(i);
                i += 1;
            }
            Err(e) => {
                // A clear transport error, well within the call's limit.
                assert!(matches!(e, Error::Redis { .. }), "{e:?}");
                assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
                errors += 1;
                // Retry the same item: the idempotency key keeps it single.
            }
        }
    }
    assert!(errors > 0, "the restart produced no error");
    let mut got = Vec::new();
    while let Ok(batch) = q.get_many_nowait(1000) {
        got.extend(batch);
    }
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for x in &got {
        *counts.entry(*x).or_default() += 1;
    }
    for x in &acked {
        assert_eq!(
            counts.get(x),
            Some(&1),
            "acknowledged item {x} lost or duplicated"
        );
    }
    assert_eq!(got.len(), acked.len());
}

#[test]
fn a_put_retried_after_its_reply_was_lost_is_enqueued_once() {
    let Some(base) = server() else { return };
    // `redis://host:port/db` → host:port of the real server.
    let authority = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap();
    let proxy = LossyProxy::start(authority);
    let name = fresh("idem");
    let q = Queue::<String>::open_or_create(
        &format!("redis://127.0.0.1:{}/0/{name}?timeout_ms=2000", proxy.port),
        0,
    )
    .unwrap();
    // A handle straight to the server, to see what it holds.
    let direct = Queue::<String>::open(&format!("{base}/{name}")).unwrap();
    // Load the put script into the server's cache, so that the armed put
    // is one EVALSHA (not NOSCRIPT, SCRIPT LOAD, EVALSHA).
    q.put(&"warm-up".to_owned()).unwrap();
    assert_eq!(q.get().unwrap(), "warm-up");

    let tag = fresh("marker");
    let a = format!("item-a-{tag}");
    proxy.arm(&a);
    let err = q.put(&a).unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert_eq!(proxy.lost(), 1, "the proxy lost no reply");
    // The server did run it: the item is in, only the reply was lost.
    assert_eq!(direct.qsize(), 1);
    // The caller retries with the same item: answered, not enqueued again.
    q.put(&a).unwrap();
    assert_eq!(q.qsize(), 1);
    assert_eq!(direct.qsize(), 1);
    assert_eq!(q.get_nowait().unwrap(), a);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    // Once the retry has succeeded, the same bytes again are a new put.
    q.put(&a).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(&a).unwrap();
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get_many_nowait(10).unwrap(), [a.clone(), a.clone()]);

    // After a lost reply, a *different* item is a new put, not taken for
    // the retry of the lost one.
    let b = format!("item-b-{tag}");
    let c = format!("item-c-{tag}");
    proxy.arm(&b);
    assert!(matches!(q.put(&b), Err(Error::Redis { .. })));
    assert_eq!(proxy.lost(), 2);
    assert_eq!(direct.qsize(), 1);
    q.put(&c).unwrap();
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get_many_nowait(10).unwrap(), [b, c]);
    assert!(matches!(direct.get_nowait(), Err(Error::Empty)));
}

/// Dropping a JoinableQueue handle reads the replies of its
/// acknowledgements sent without waiting and sends the owed ones again;
/// when the server has gone silent (connections open, nothing answered),
/// all of that takes about `timeout_ms` in total, not a `timeout_ms` per
/// reply and per attempt.
#[test]
fn dropping_a_consumer_when_the_server_went_silent_takes_about_timeout_ms() {
    let Some(base) = server() else { return };
    let proxy = LossyProxy::start(authority(&base));
    let name = fresh("silentdrop");
    let direct = JoinableQueue::<u64>::open_or_create(&format!("{base}/{name}"), 0).unwrap();
    direct.put_many(&[1, 2]).unwrap();
    let timeout = Duration::from_millis(1000);
    let q = JoinableQueue::<u64>::open(&format!(
        "redis://127.0.0.1:{}/0/{name}?timeout_ms={}",
        proxy.port,
        timeout.as_millis()
    ))
    .unwrap();
    // The first acknowledgement waits for its reply; the second does not.
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert_eq!(q.get().unwrap(), 2);
    proxy.go_silent();
    q.task_done().unwrap();
    let t = Instant::now();
    drop(q);
    let took = t.elapsed();
    // (Unbounded, reading the reply, then connecting, sending it again and
    // retrying once each waited up to a whole timeout_ms: 5 s here.)
    assert!(took < timeout * 2, "the drop took {took:?}");
    procq::remove(&format!("{base}/{name}")).unwrap();
}

/// `rediss://127.0.0.1:PORT/0` of the TLS server `50-redis.sh` starts (its
/// CA in `SSL_CERT_FILE`). `None` only where every Redis test skips (no
/// redis-server at all); a run that has a plain server but no TLS one fails
/// rather than passing without having tested TLS.
#[cfg(feature = "redis-tls")]
fn tls_server() -> Option<String> {
    match std::env::var("PROCQ_REDIS_TLS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            server()?;
            panic!(
                "PROCQ_REDIS_TLS_URL is not set: the redis-tls tests need the TLS \
                 redis-server that scripts/test.d/50-redis.sh starts (rediss://127.0.0.1:PORT/0, \
                 with SSL_CERT_FILE naming its CA)"
            );
        }
    }
}

#[cfg(feature = "redis-tls")]
#[test]
fn tls_queues_work_across_processes_and_plain_urls_to_tls_fail_fast() {
    let Some(base) = tls_server() else { return };
    assert!(base.starts_with("rediss://"), "{base}");

    // Items from a child process, then through a child that forwards them.
    let q = make::<u64>(&base, "tls", 0, "");
    let results = make::<u64>(&base, "tls-out", 0, "");
    assert!(q.name().starts_with("rediss://"));
    let mut producer = spawn("produce", &[q.name(), "0", "100"]);
    let mut got = Vec::new();
    while got.len() < 100 {
        got.extend(q.get_many_timeout(100, Duration::from_secs(20)).unwrap());
    }
    wait_ok(&mut producer, Duration::from_secs(20));
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    let mut consumer = spawn("consume", &[q.name(), results.name()]);
    q.put_many(&(100..150).collect::<Vec<_>>()).unwrap();
    q.put(&contract_support::SENTINEL).unwrap();
    wait_ok(&mut consumer, Duration::from_secs(20));
    assert_eq!(drain(&results, 50), (100..150).collect::<Vec<_>>());

    // A joinable queue's join waits for a worker process's task_done calls.
    let j = make_joinable(&base, "tls-join", "");
    let done = make::<u64>(&base, "tls-join-out", 0, "");
    j.put_many(&(0..30).collect::<Vec<_>>()).unwrap();
    j.put(&contract_support::SENTINEL).unwrap();
    assert!(j.join_timeout(Duration::from_millis(100)).is_err());
    let mut worker = spawn("work", &[j.name(), done.name()]);
    j.join_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(j.unfinished_tasks().unwrap(), 0);
    wait_ok(&mut worker, Duration::from_secs(20));
    assert_eq!(drain(&done, 30), (0..30).collect::<Vec<_>>());

    // A plain redis:// URL to the TLS port: a clear transport error, soon.
    let authority = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap();
    let plain = format!(
        "redis://{authority}/0/{}?timeout_ms=1000",
        fresh("tls-plain")
    );
    let t = Instant::now();
    let err = Queue::<u64>::open(&plain).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert!(err.to_string().contains(authority), "{err}");
}

#[test]
fn raw_queues_builder_stats_list_and_remove_take_urls() {
    let Some(base) = server() else { return };
    let plain = format!("{base}/{}", fresh("raw"));
    let raw = procq::RawQueue::open_or_create(&plain, 0).unwrap();
    raw.put_parts(b"ab", b"cd", None).unwrap();
    raw.put_many([b"e".as_slice(), b"f"]).unwrap();
    assert_eq!(raw.qsize(), 3);
    assert_eq!(raw.get_with(None, |b| b.to_vec()).unwrap(), b"abcd");
    assert_eq!(raw.get_many(5).unwrap(), vec![b"e".to_vec(), b"f".to_vec()]);
    assert!(matches!(
        raw.get_with(Some(Duration::ZERO), |b| b.len()),
        Err(Error::Empty)
    ));

    let jurl = format!("{base}/{}", fresh("raw-j"));
    let j = procq::Builder::new()
        .name(&jurl)
        .maxsize(2)
        .build_raw_joinable()
        .unwrap();
    assert!(j.is_joinable());
    // Without maxsize the builder takes the existing bound; a different one is refused.
    assert_eq!(
        procq::Builder::new()
            .name(&jurl)
            .build_raw_joinable()
            .unwrap()
            .maxsize(),
        2
    );
    assert!(procq::Builder::new()
        .name(&jurl)
        .maxsize(3)
        .build_raw_joinable()
        .is_err());
    assert!(procq::Builder::new().name(&jurl).build_raw().is_err()); // other kind
    j.put(b"task").unwrap();
    assert!(matches!(
        j.join_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let st = procq::stats(&jurl).unwrap();
    assert_eq!(
        (st.kind, st.maxsize, st.items, st.unfinished_tasks),
        (procq::Kind::Joinable, 2, 1, 1)
    );
    assert_eq!(j.get().unwrap(), b"task");
    let st = procq::stats(&jurl).unwrap();
    assert_eq!(
        (st.items, st.unfinished_tasks, st.attached_processes),
        (0, 1, 1)
    );
    j.task_done().unwrap();
    j.join().unwrap();

    let listed = procq::list_redis(&base).unwrap();
    assert!(
        listed.contains(&plain) && listed.contains(&jurl),
        "{listed:?}"
    );
    // Inspecting a missing queue neither fails silently nor creates it.
    let missing = format!("{base}/{}", fresh("missing"));
    assert!(matches!(procq::stats(&missing), Err(Error::NotFound(_))));
    assert!(!procq::list_redis(&base).unwrap().contains(&missing));
    procq::remove(&jurl).unwrap();
    assert!(matches!(procq::stats(&jurl), Err(Error::NotFound(_))));
    assert!(matches!(procq::remove(&jurl), Err(Error::NotFound(_))));
    assert!(!procq::list_redis(&base).unwrap().contains(&jurl));
}

#[test]
fn an_eviction_policy_that_can_drop_items_is_refused_at_open() {
    if server().is_none() {
        return;
    }
    let own = OwnServer::start("procq-redis-evict", &["--maxmemory-policy", "allkeys-lru"]);
    let url = format!("{}/{}", own.base(), fresh("evict"));
    let err = Queue::<u64>::open(&url).unwrap_err();
    assert!(matches!(err, Error::InvalidQueue { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("maxmemory-policy") && msg.contains("allkeys-lru"),
        "{msg}"
    );
    // Nothing was created; the caller may accept the risk explicitly.
    let q = Queue::<u64>::open_or_create(&format!("{url}?allow_eviction=1"), 0).unwrap();
    q.put(&1).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    drop(own);

    // Under noeviction a full server refuses the put that does not fit:
    // an error, and every item acknowledged before it is still there.
    let own = OwnServer::start(
        "procq-redis-full",
        &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"],
    );
    let url = format!("{}/{}", own.base(), fresh("full"));
    let q = JoinableQueue::<Vec<u8>>::open_or_create(&url, 0).unwrap();
    let mut acked = 0;
    let err = loop {
        match q.put(&vec![acked as u8; 64 * 1024]) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1000, "a 4 MB server took 64 MB");
    };
    assert!(err.to_string().contains("OOM"), "{err}");
    assert!(acked > 0);
    assert_eq!(q.qsize(), acked);
    assert_eq!(q.unfinished_tasks().unwrap(), acked as u64);
    for i in 0..acked {
        assert_eq!(q.get_nowait().unwrap(), vec![i as u8; 64 * 1024]);
        q.task_done().unwrap();
    }
    q.join_timeout(Duration::from_secs(5)).unwrap();
}

#[cfg(feature = "redis-tls")]
#[test]
fn tls_connect_to_a_server_that_never_answers_is_bounded_by_timeout_ms() {
    // Accepts TCP connections and never sends a byte: the TLS handshake
    // must not wait past timeout_ms.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let url = format!(
        "rediss://127.0.0.1:{port}/0/{}?timeout_ms=500",
        fresh("tls-silent")
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = Queue::<u64>::open(&url).map(|_| ());
        let _ = tx.send((r, t.elapsed()));
    });
    let (r, e) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("rediss:// open hung on a server that never answers");
    let err = r.unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert!(e < Duration::from_secs(3), "open took {e:?}");
}

/// A Redis user (ACL) of this test's own with a password, deleted on drop:
/// the shared server's default user stays password-free.
struct AclUser {
    base: String,
    name: String,
}

impl AclUser {
    fn new(base: &str, password: &str) -> AclUser {
        let name = format!("procq-test-{}", fresh("user"));
        let mut con = redis::Client::open(base).unwrap().get_connection().unwrap();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .exec(&mut con)
            .unwrap();
        AclUser {
            base: base.to_owned(),
            name,
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        if let Ok(mut con) =
            redis::Client::open(self.base.as_str()).and_then(|c| c.get_connection())
        {
            let _ = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(&self.name)
                .exec(&mut con);
        }
    }
}

#[test]
fn passwords_from_the_environment_or_a_file_never_show() {
    let Some(base) = server() else { return };
    let secret = format!("pw-{}", fresh("secret"));
    let user = AclUser::new(&base, &secret);
    let auth = authority(&base);
    let dir = TempDir::fresh("procq-pw");
    let file = dir.0.join("password");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let name = fresh("pw");
    let by_file = format!(
        "redis://{}@{auth}/0/{name}?password_file={}",
        user.name,
        file.display()
    );
    let q = Queue::<u64>::open_or_create(&by_file, 0).unwrap();
    assert!(!q.name().contains(&secret));
    assert!(!format!("{q:?}").contains(&secret));

    // Another process reads it from its own environment: the URL (which
    // `ps` would show) carries only the variable's name.
    let by_env = format!(
        "redis://{}@{auth}/0/{name}?password_env=PROCQ_TEST_REDIS_PASSWORD",
        user.name
    );
    let mut child = common::role_command("produce", &[&by_env, "0", "20"])
        .env("PROCQ_TEST_REDIS_PASSWORD", &secret)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ok(&mut child, Duration::from_secs(30));
    assert_eq!(drain(&q, 20), (0..20).collect::<Vec<_>>());

    // Listing keeps the option, so listed URLs open as they are.
    let server_url = format!(
        "redis://{}@{auth}/0?password_file={}",
        user.name,
        file.display()
    );
    let listed = procq::list_redis(&server_url).unwrap();
    assert!(listed.contains(&by_file), "{listed:?}");

    // Wrong or missing passwords: clear errors that never show one.
    std::fs::write(&file, "not-the-password\n").unwrap();
    let err = Queue::<u64>::open(&by_file).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(
        !msg.contains("not-the-password") && !msg.contains(&secret),
        "{msg}"
    );
    let unset = format!(
        "redis://{}@{auth}/0/{name}?password_env=PROCQ_TEST_SURELY_UNSET",
        user.name
    );
    let err = Queue::<u64>::open(&unset).unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    assert!(err.to_string().contains("password_env"), "{err}");
    std::fs::remove_file(&file).unwrap();
    assert!(matches!(
        Queue::<u64>::open(&by_file),
        Err(Error::Io { .. })
    ));
    drop(q);
    let mut con = redis::Client::open(base.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("procq:{{{name}}}:meta"))
        .query(&mut con)
        .unwrap();
}
