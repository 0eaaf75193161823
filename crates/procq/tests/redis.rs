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

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(feature = "redis-tls")]
use common::wait_ok;
use common::{role, spawn};
use procq::{Error, JoinableQueue, Queue};

const SENTINEL: u64 = u64::MAX;

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    let a = |i: usize| args[i].as_str();
    match role.as_str() {
        "produce" => {
            let q = Queue::<u64>::open(a(0)).unwrap();
            let start: u64 = a(1).parse().unwrap();
            let count: u64 = a(2).parse().unwrap();
            for i in start..start + count {
                q.put_timeout(&i, Duration::from_secs(30)).unwrap();
            }
        }
        "consume" => {
            // Forwards every item to the results queue until the sentinel.
            let q = Queue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            loop {
                let x = q.get_timeout(Duration::from_secs(30)).unwrap();
                if x == SENTINEL {
                    break;
                }
                out.put(&x).unwrap();
            }
        }
        "work" => {
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            loop {
                let x = q.get_timeout(Duration::from_secs(30)).unwrap();
                if x != SENTINEL {
                    out.put(&x).unwrap();
                }
                q.task_done().unwrap();
                if x == SENTINEL {
                    break;
                }
            }
        }
        "hold" => {
            // Takes one task, reports it, and never finishes it.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let got = Queue::<u64>::open(a(1)).unwrap();
            let x = q.get_timeout(Duration::from_secs(30)).unwrap();
            got.put(&x).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "put_later" => {
            let q = Queue::<u64>::open(a(0)).unwrap();
            std::thread::sleep(Duration::from_millis(a(1).parse().unwrap()));
            q.put(&a(2).parse().unwrap()).unwrap();
        }
        "get_later" => {
            let q = Queue::<u64>::open(a(0)).unwrap();
            std::thread::sleep(Duration::from_millis(a(1).parse().unwrap()));
            q.get_timeout(Duration::from_secs(10)).unwrap();
        }
        "pause_then_ack" => {
            // Gets x, waits for "go" (the test stops this process meanwhile,
            // past its lease), gets y, acknowledges x, and waits to be killed
            // holding y.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            let ctl = Queue::<u64>::open(a(2)).unwrap();
            let x = q.get_timeout(Duration::from_secs(30)).unwrap();
            out.put(&x).unwrap();
            ctl.get_timeout(Duration::from_secs(60)).unwrap();
            let y = q.get_timeout(Duration::from_secs(30)).unwrap();
            out.put(&y).unwrap();
            q.task_done().unwrap(); // for x, got first
            out.put(&SENTINEL).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "threads" => {
            // Two threads share one handle: the first abandons its item, the
            // second finishes its own; then the process waits to be killed.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let x = q.get_timeout(Duration::from_secs(30)).unwrap();
                    out.put(&x).unwrap();
                    // Abandoned: no task_done (a crashed or stuck task).
                })
                .join()
                .unwrap();
                s.spawn(|| {
                    let y = q.get_timeout(Duration::from_secs(30)).unwrap();
                    out.put(&y).unwrap();
                    q.task_done().unwrap();
                    out.put(&SENTINEL).unwrap();
                })
                .join()
                .unwrap();
            });
            std::thread::sleep(Duration::from_secs(60));
        }
        "partial" => {
            // Takes a batch, finishes half of it one by one, and waits to
            // be killed holding the rest.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            let batch = q.get_many_timeout(4, Duration::from_secs(30)).unwrap();
            assert_eq!(batch.len(), 4);
            q.task_done().unwrap();
            q.task_done().unwrap();
            out.put(&SENTINEL).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

/// `redis://127.0.0.1:PORT/0`, or `None` (with a message) when the test
/// script could not provide a server.
fn server() -> Option<String> {
    match std::env::var("PROCQ_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIP: PROCQ_REDIS_URL is not set (no redis-server); \
                 run scripts/test.d/50-redis.sh to test the Redis backend"
            );
            None
        }
    }
}

fn fresh(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
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

#[cfg(feature = "redis-tls")]
fn drain(results: &Queue<u64>, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(
            results
                .get_many_timeout(n, Duration::from_secs(20))
                .unwrap(),
        );
    }
    got.sort_unstable();
    got
}

#[test]
fn killed_consumer_task_is_redelivered_and_join_waits_for_it() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=600", fresh("kill"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let got = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("kill-got")), 0).unwrap();
    q.put(&11).unwrap();
    q.put(&12).unwrap();
    let mut holder = spawn("hold", &[&url, got.name()]);
    assert_eq!(got.get_timeout(Duration::from_secs(10)).unwrap(), 11);
    holder.kill().unwrap(); // SIGKILL mid-task
    holder.wait().unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    // Joining now must wait for the dead consumer's task too.
    let joiner = std::thread::spawn({
        let q = q.clone();
        move || {
            let t = Instant::now();
            (q.join_timeout(Duration::from_secs(20)), t.elapsed())
        }
    });
    // 12 first (the queue's head), then 11 once the lease has run out.
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 12);
    q.task_done().unwrap();
    let t = Instant::now();
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 11);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "redelivered after {:?}",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !joiner.is_finished(),
        "join returned before the redelivered task was done"
    );
    q.task_done().unwrap();
    let (r, _) = joiner.join().unwrap();
    r.unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
}

#[test]
fn a_task_done_after_lease_expiry_is_not_counted_twice() {
    let Some(base) = server() else { return };
    // Without the heartbeat a live consumer loses its lease after lease_ms.
    let url = format!("{base}/{}?lease_ms=200&heartbeat=0", fresh("late"));
    let slow = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let fast = slow.clone(); // another consumer identity
    slow.put(&1).unwrap();
    assert_eq!(slow.get().unwrap(), 1);
    std::thread::sleep(Duration::from_millis(400)); // lease runs out
                                                    // The item comes back to another consumer: at-least-once.
    assert_eq!(fast.get_timeout(Duration::from_secs(5)).unwrap(), 1);
    slow.task_done().unwrap(); // late: accepted, not counted
    assert_eq!(slow.unfinished_tasks().unwrap(), 1);
    fast.task_done().unwrap();
    slow.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(slow.task_done(), Err(Error::TaskDoneTooOften)));
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of this test's own, with every write fsynced to its
/// append-only file before it is acknowledged, so that a crash loses
/// nothing acknowledged.
struct Server {
    child: Child,
}

impl Server {
    fn start(port: u16, dir: &std::path::Path) -> Server {
        Server::start_with(port, dir, &[])
    }

    /// Starts a server with `extra` configuration arguments.
    fn start_with(port: u16, dir: &std::path::Path, extra: &[&str]) -> Server {
        let bin = std::env::var("PROCQ_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes the restart test's data directory however the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn redis_restart_errors_then_recovers_and_loses_no_acknowledged_item() {
    if server().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(fresh("procq-redis-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let port = free_port();
    let mut srv = Server::start(port, &dir);
    let url = format!("redis://127.0.0.1:{port}/0/stream?timeout_ms=500");
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
            srv.kill(); // crash in the middle of the stream
            restarted = Some(Instant::now());
        }
        if let Some(t) = restarted {
            if t.elapsed() > Duration::from_millis(700) && srv.child.try_wait().unwrap().is_some() {
                srv = Server::start(port, &dir);
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
    drop(srv);
}

/// A TCP proxy between the client and the real server that can lose one
/// reply: once armed with a marker, the first client chunk containing it is
/// forwarded (the server runs the command), but the server's next chunk on
/// that connection is swallowed and both sockets are shut, as when a
/// connection breaks after the server has acted and before the client heard.
struct LossyProxy {
    port: u16,
    /// The marker whose command's reply is to be lost (one shot).
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Replies swallowed so far.
    lost: std::sync::Arc<AtomicU64>,
}

impl LossyProxy {
    /// Listens on a free 127.0.0.1 port and forwards every connection to
    /// `upstream` (host:port), a thread per direction.
    fn start(upstream: &str) -> LossyProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpStream};
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let lost = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let (armed2, lost2) = (armed.clone(), lost.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue; // the client sees the connection close
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // Set (before the request is forwarded) when the server's
                // next chunk on this connection is to be swallowed.
                let lose_reply = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (armed, lose) = (armed2.clone(), lose_reply.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        {
                            let mut armed = armed.lock().unwrap();
                            let hit = armed.as_ref().is_some_and(|m| {
                                buf[..n].windows(m.len()).any(|w| w == m.as_slice())
                            });
                            if hit {
                                *armed = None;
                                lose.store(true, Ordering::SeqCst);
                            }
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let lost = lost2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if lose_reply.load(Ordering::SeqCst) {
                            lost.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_in.shutdown(Shutdown::Both);
                    let _ = c_out.shutdown(Shutdown::Both);
                });
            }
        });
        LossyProxy { port, armed, lost }
    }

    /// Loses the reply to the next command carrying `marker`.
    fn arm(&self, marker: &str) {
        *self.armed.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }
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
    q.put(&SENTINEL).unwrap();
    wait_ok(&mut consumer, Duration::from_secs(20));
    assert_eq!(drain(&results, 50), (100..150).collect::<Vec<_>>());

    // A joinable queue's join waits for a worker process's task_done calls.
    let j = make_joinable(&base, "tls-join", "");
    let done = make::<u64>(&base, "tls-join-out", 0, "");
    j.put_many(&(0..30).collect::<Vec<_>>()).unwrap();
    j.put(&SENTINEL).unwrap();
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
fn a_live_consumer_keeps_its_lease_and_a_dropped_handle_gives_items_back() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=300", fresh("beat"));
    let slow = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let other = JoinableQueue::<u64>::open(&url).unwrap();
    slow.put(&7).unwrap();
    assert_eq!(slow.get().unwrap(), 7);
    // Four lease periods: the heartbeat keeps the task with its live owner.
    assert!(matches!(
        other.get_timeout(Duration::from_millis(1200)),
        Err(Error::Empty)
    ));
    assert_eq!(other.unfinished_tasks().unwrap(), 1);
    // A handle dropped mid-task stops renewing: the task comes back.
    drop(slow);
    let t = Instant::now();
    assert_eq!(other.get_timeout(Duration::from_secs(5)).unwrap(), 7);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    other.task_done().unwrap();
    other.join_timeout(Duration::from_secs(5)).unwrap();
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

/// Sends `sig` to `child`.
fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this test started and has not reaped.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({}, {sig})", child.id());
}

/// `host:port` of a `redis://host:port/db` URL.
fn authority(base: &str) -> &str {
    base.split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
}

#[test]
fn a_get_whose_reply_was_lost_is_delivered_and_never_acknowledged_unseen() {
    let Some(base) = server() else { return };
    let proxy = LossyProxy::start(authority(&base));
    let name = fresh("lostget");
    let direct = JoinableQueue::<u64>::open_or_create(&format!("{base}/{name}"), 0).unwrap();
    // Load the get and task_done scripts into the server's cache, so that
    // the armed get is one EVALSHA (not NOSCRIPT, SCRIPT LOAD, EVALSHA).
    direct.put(&0).unwrap();
    assert_eq!(direct.get().unwrap(), 0);
    direct.task_done().unwrap();
    direct.put_many(&[1, 2]).unwrap();

    let q = JoinableQueue::<u64>::open(&format!(
        "redis://127.0.0.1:{}/0/{name}?timeout_ms=2000",
        proxy.port
    ))
    .unwrap();
    // Every command of `q` carries the queue name; the next one is the get.
    proxy.arm(&name);
    let err = q.get_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    assert_eq!(proxy.lost(), 1, "the proxy lost no reply");
    // The server did run it: one item is in flight, only the reply was lost.
    assert_eq!(direct.qsize(), 1);

    // A worker loop as any user writes it: retry after a transport error,
    // task_done after each item it processed.
    let mut processed = Vec::new();
    loop {
        match q.get_timeout(Duration::from_millis(1500)) {
            Ok(x) => {
                processed.push(x);
                q.task_done().unwrap();
            }
            Err(Error::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    processed.sort_unstable();
    assert_eq!(processed, [1, 2], "an item was never handed out");
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    direct.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));

    // A task_done whose reply is lost is sent again and counted once.
    direct.put_many(&[3, 4]).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 3);
    proxy.arm(&name);
    q.task_done().unwrap();
    assert_eq!(proxy.lost(), 2, "the proxy lost no reply");
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 4);
    q.task_done().unwrap();
    direct.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
}

#[test]
fn a_late_task_done_after_a_pause_past_the_lease_acknowledges_the_old_item() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=500", fresh("paused"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let out = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("paused-out")), 0).unwrap();
    let ctl = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("paused-ctl")), 0).unwrap();
    q.put(&1).unwrap();
    let mut child = spawn("pause_then_ack", &[&url, out.name(), ctl.name()]);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), 1);
    // Stopped (heartbeat included) for three leases: item 1 comes back.
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 1);
    q.put(&2).unwrap();
    ctl.put(&0).unwrap();
    signal(&child, libc::SIGCONT);
    // Resumed: it gets 2, then acknowledges 1 (late), then dies holding 2.
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), 2);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), SENTINEL);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        q.get_timeout(Duration::from_secs(5)).ok(),
        Some(2),
        "the item the dead consumer held was not redelivered"
    );
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
}

#[test]
fn threads_sharing_a_handle_acknowledge_their_own_items() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=500", fresh("threads"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let out = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("threads-out")), 0).unwrap();
    q.put_many(&[1, 2]).unwrap();
    let mut child = spawn("threads", &[&url, out.name()]);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), 1);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), 2);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), SENTINEL);
    child.kill().unwrap();
    child.wait().unwrap();
    // The abandoned item comes back; the finished one does not.
    assert_eq!(
        q.get_timeout(Duration::from_secs(5)).ok(),
        Some(1),
        "the second thread's task_done acknowledged the first thread's item"
    );
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(1500)),
        Err(Error::Empty)
    ));

    // A thread that got nothing (a dispatcher's workers) still acknowledges
    // the handle's oldest item, as multiprocessing allows.
    q.put_many(&[3, 4]).unwrap();
    let got = std::thread::scope(|s| s.spawn(|| q.get_many(2).unwrap()).join().unwrap());
    assert_eq!(got, [3, 4]);
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
}

#[test]
fn an_eviction_policy_that_can_drop_items_is_refused_at_open() {
    if server().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(fresh("procq-redis-evict"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let port = free_port();
    let _srv = Server::start_with(port, &dir, &["--maxmemory-policy", "allkeys-lru"]);
    let url = format!("redis://127.0.0.1:{port}/0/{}", fresh("evict"));
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
    drop(_srv);

    // Under noeviction a full server refuses the put that does not fit:
    // an error, and every item acknowledged before it is still there.
    let port = free_port();
    let full_dir = dir.join("full");
    std::fs::create_dir_all(&full_dir).unwrap();
    let _srv = Server::start_with(
        port,
        &full_dir,
        &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"],
    );
    let url = format!("redis://127.0.0.1:{port}/0/{}", fresh("full"));
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

#[test]
fn an_item_delivered_max_deliveries_times_goes_to_the_dead_letter_queue() {
    let Some(base) = server() else { return };
    let name = fresh("poison");
    let url = format!("{base}/{name}?lease_ms=300&max_deliveries=2");
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let got = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("poison-got")), 0).unwrap();
    q.put_many(&[1, 2]).unwrap();
    // Item 1 kills every consumer that takes it.
    for _ in 0..2 {
        let mut holder = spawn("hold", &[&url, got.name()]);
        assert_eq!(got.get_timeout(Duration::from_secs(20)).unwrap(), 1);
        holder.kill().unwrap();
        holder.wait().unwrap();
        // Past the dead holder's lease, a script reaps it (join runs one).
        assert!(q.join_timeout(Duration::from_millis(800)).is_err());
    }
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 2);
    q.task_done().unwrap();
    // Delivered twice without task_done: moved out and counted done.
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    assert!(matches!(
        q.get_timeout(Duration::from_millis(500)),
        Err(Error::Empty)
    ));
    let st = q.stats().unwrap();
    assert_eq!(
        (
            st.deliveries,
            st.redeliveries,
            st.dead_letters,
            st.max_deliveries
        ),
        (3, 1, 1, 2)
    );
    // The dead-letter queue is an ordinary queue of the same item type,
    // on the same server and database, listed with the others.
    let dead_url = format!("{base}/{name}.dead");
    assert!(procq::list_redis(&base).unwrap().contains(&dead_url));
    assert!(matches!(
        Queue::<String>::open(&dead_url),
        Err(Error::InvalidQueue { .. })
    ));
    let dead = Queue::<u64>::open(&dead_url).unwrap();
    assert_eq!(dead.stats().unwrap().kind, procq::Kind::Queue);
    assert_eq!(dead.get_nowait().unwrap(), 1);
    assert!(matches!(dead.get_nowait(), Err(Error::Empty)));
    // A queue opened with another limit than its own is refused.
    assert!(matches!(
        JoinableQueue::<u64>::open(&format!("{base}/{name}?max_deliveries=3")),
        Err(Error::InvalidQueue { .. })
    ));
    procq::remove(&dead_url).unwrap();
    procq::remove(&format!("{base}/{name}")).unwrap();
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
    let dir = std::env::temp_dir().join(fresh("procq-pw"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let file = dir.join("password");
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
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("PROCQ_TEST_ROLE", "produce")
        .env(
            "PROCQ_TEST_ARGS",
            [by_env.as_str(), "0", "20"].join("\u{1f}"),
        )
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

#[test]
fn a_partly_finished_batch_comes_back_without_its_finished_items() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=500", fresh("partial"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let out = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("partial-out")), 0).unwrap();
    q.put_many(&[1, 2, 3, 4, 5]).unwrap();
    let mut child = spawn("partial", &[&url, out.name()]);
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), SENTINEL);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 3);
    // Past the dead consumer's lease, a script reaps it (join runs one).
    assert!(q.join_timeout(Duration::from_millis(800)).is_err());
    // The server forgets its scripts (as after a restart): reloaded.
    let mut con = redis::Client::open(base.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SCRIPT").arg("FLUSH").exec(&mut con).unwrap();
    // Items 3 and 4 come back first, in order, then 5; 1 and 2 never.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(q.get_many_timeout(10, Duration::from_secs(5)).unwrap());
    }
    assert_eq!(got, [3, 4, 5]);
    let st = q.stats().unwrap();
    assert_eq!((st.redeliveries, st.deliveries), (2, 7));
    q.task_done_many(3).unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(800)),
        Err(Error::Empty)
    ));
}
