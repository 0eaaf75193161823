//! The Redis backend (`--features redis`), against a real `redis-server`.
//!
//! `scripts/test.d/50-redis.sh` starts a server on a free 127.0.0.1 port and
//! sets `PROCQ_REDIS_URL` (`redis://127.0.0.1:PORT/0`) and
//! `PROCQ_REDIS_SERVER` (the binary, for the restart test, which runs its own
//! server). The shared semantics run against both backends with the same
//! code: shared memory (a name) and Redis (a URL) go through the same
//! `Queue::open`. Without `PROCQ_REDIS_URL` every test prints why it skips.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{role, spawn, wait_ok};
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

/// A queue location on one backend: a shared-memory name, or a Redis URL.
#[derive(Clone, Copy, Debug)]
enum On {
    Shm,
    Redis,
}

/// Creates a fresh queue location with `maxsize` on `on`; `opts` are Redis
/// URL options. Returns the first handle (it keeps a shm queue alive).
fn make<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    on: On,
    base: &str,
    tag: &str,
    maxsize: usize,
    opts: &str,
) -> Queue<T> {
    let loc = match on {
        On::Shm => fresh(tag),
        On::Redis => format!("{base}/{}{opts}", fresh(tag)),
    };
    Queue::open_or_create(&loc, maxsize).unwrap()
}

fn make_joinable(on: On, base: &str, tag: &str, opts: &str) -> JoinableQueue<u64> {
    let loc = match on {
        On::Shm => fresh(tag),
        On::Redis => format!("{base}/{}{opts}", fresh(tag)),
    };
    JoinableQueue::open_or_create(&loc, 0).unwrap()
}

/// Runs `f` on both backends.
fn both(f: impl Fn(On, &str)) {
    let Some(base) = server() else { return };
    for on in [On::Shm, On::Redis] {
        eprintln!("backend {on:?}");
        f(on, &base);
    }
}

#[test]
fn fifo_sizes_nowait_and_timeouts() {
    both(|on, base| {
        let q = make::<u64>(on, base, "fifo", 3, "");
        assert!(q.empty() && !q.full());
        assert_eq!((q.maxsize(), q.capacity()), (3, Some(3)));
        for i in 0..3 {
            q.put(&i).unwrap();
        }
        assert_eq!(q.qsize(), 3);
        assert!(q.full());
        assert!(matches!(q.put_nowait(&9), Err(Error::Full)));
        let t = Instant::now();
        assert!(matches!(
            q.put_timeout(&9, Duration::from_millis(150)),
            Err(Error::Full)
        ));
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(150) && e < Duration::from_secs(1),
            "{e:?}"
        );
        assert_eq!(q.get().unwrap(), 0);
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 2);
        assert!(matches!(q.get_nowait(), Err(Error::Empty)));
        let t = Instant::now();
        assert!(matches!(
            q.get_deadline(Instant::now() + Duration::from_millis(150)),
            Err(Error::Empty)
        ));
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(150) && e < Duration::from_secs(1),
            "{e:?}"
        );
        // Another handle (as another process would) sees the same queue.
        let other = Queue::<u64>::open(q.name()).unwrap();
        q.put(&7).unwrap();
        assert_eq!(other.qsize(), 1);
        assert_eq!(other.get().unwrap(), 7);
    });
}

#[test]
fn batches_keep_order_and_respect_maxsize() {
    both(|on, base| {
        let q = make::<u64>(on, base, "batch", 0, "");
        let items: Vec<u64> = (0..2500).collect();
        q.put_many(&items).unwrap();
        assert_eq!(q.qsize(), 2500);
        let mut got = Vec::new();
        while got.len() < 2500 {
            got.extend(q.get_many_timeout(700, Duration::from_secs(2)).unwrap());
        }
        assert_eq!(got, items);
        assert!(matches!(q.get_many_nowait(5), Err(Error::Empty)));

        // A bounded queue takes a batch larger than maxsize as room frees.
        let b = make::<u64>(on, base, "batch-bounded", 4, "");
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.put_many(&(0..20).collect::<Vec<_>>()));
        let mut got = Vec::new();
        while got.len() < 20 {
            assert!(b.qsize() <= 4);
            got.extend(b.get_many_timeout(3, Duration::from_secs(5)).unwrap());
        }
        t.join().unwrap().unwrap();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    });
}

#[test]
fn blocked_get_and_put_are_woken_promptly_by_other_processes() {
    both(|on, base| {
        let q = make::<u64>(on, base, "wake", 1, "");
        let mut child = spawn("put_later", &[q.name(), "300", "42"]);
        let t = Instant::now();
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 42);
        let e = t.elapsed();
        // Woken by the put, not by a periodic check (the backstop is 2 s).
        assert!(e < Duration::from_millis(1300), "get woke after {e:?}");
        wait_ok(&mut child, Duration::from_secs(10));

        q.put(&1).unwrap();
        let mut child = spawn("get_later", &[q.name(), "300"]);
        let t = Instant::now();
        q.put_timeout(&2, Duration::from_secs(10)).unwrap();
        let e = t.elapsed();
        assert!(e < Duration::from_millis(1300), "put woke after {e:?}");
        wait_ok(&mut child, Duration::from_secs(10));
        assert_eq!(q.get().unwrap(), 2);
    });
}

#[test]
fn close_wakes_this_handles_waiters_only() {
    both(|on, base| {
        let q = make::<u64>(on, base, "close", 0, "");
        let other = q.clone();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = q.get_timeout(Duration::from_secs(10));
                (r, t.elapsed(), q)
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        // The waiter's handle is a clone: closing `q` does not close it.
        q.close();
        assert!(q.is_closed());
        assert!(matches!(q.put(&1), Err(Error::Closed)));
        assert!(matches!(q.get_nowait(), Err(Error::Closed)));
        other.put(&5).unwrap();
        let (r, e, _) = waiter.join().unwrap();
        assert_eq!(r.unwrap(), 5);
        assert!(e < Duration::from_secs(2), "{e:?}");
    });
}

#[test]
fn close_interrupts_a_blocked_call_on_the_same_handle() {
    both(|on, base| {
        let q = std::sync::Arc::new(make::<u64>(on, base, "close-same", 0, ""));
        let t = std::thread::spawn({
            let q = q.clone();
            move || {
                let start = Instant::now();
                (q.get_timeout(Duration::from_secs(10)), start.elapsed())
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        q.close();
        let (r, e) = t.join().unwrap();
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        assert!(
            e < Duration::from_secs(2),
            "close took {e:?} to wake the waiter"
        );
    });
}

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
fn many_processes_every_item_exactly_once_and_maxsize_never_exceeded() {
    both(|on, base| {
        let q = make::<u64>(on, base, "mpmc", 5, "");
        let results = make::<u64>(on, base, "mpmc-out", 0, "");
        let producers: Vec<Child> = (0..3)
            .map(|p| spawn("produce", &[q.name(), &(p * 1000).to_string(), "200"]))
            .collect();
        let consumers: Vec<Child> = (0..3)
            .map(|_| spawn("consume", &[q.name(), results.name()]))
            .collect();
        // Watch the bound while everyone runs.
        let mut max_seen = 0;
        let start = Instant::now();
        while results.qsize() < 600 && start.elapsed() < Duration::from_secs(30) {
            max_seen = max_seen.max(q.qsize());
        }
        for mut c in producers {
            wait_ok(&mut c, Duration::from_secs(30));
        }
        for _ in 0..3 {
            q.put(&SENTINEL).unwrap();
        }
        for mut c in consumers {
            wait_ok(&mut c, Duration::from_secs(30));
        }
        assert!(max_seen <= 5, "qsize reached {max_seen} > maxsize 5");
        let want: Vec<u64> = (0..3).flat_map(|p| p * 1000..p * 1000 + 200).collect();
        assert_eq!(drain(&results, 600), want);
        assert!(results.empty() && q.empty());
    });
}

#[test]
fn joinable_join_waits_for_task_done_across_processes() {
    both(|on, base| {
        let q = make_joinable(on, base, "join", "");
        let results = make::<u64>(on, base, "join-out", 0, "");
        q.put_many(&(0..100).collect::<Vec<_>>()).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 100);
        assert!(q.join_timeout(Duration::from_millis(100)).is_err());
        let workers: Vec<Child> = (0..2)
            .map(|_| spawn("work", &[q.name(), results.name()]))
            .collect();
        for _ in 0..2 {
            q.put(&SENTINEL).unwrap();
        }
        q.join_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
        for mut w in workers {
            wait_ok(&mut w, Duration::from_secs(30));
        }
        assert_eq!(drain(&results, 100), (0..100).collect::<Vec<_>>());
        assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
    });
}

#[test]
fn killed_consumer_task_is_redelivered_and_join_waits_for_it() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}?lease_ms=600", fresh("kill"));
    let q = JoinableQueue::<u64>::open(&url).unwrap();
    let got = Queue::<u64>::open(&format!("{base}/{}", fresh("kill-got"))).unwrap();
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
    let url = format!("{base}/{}?lease_ms=200", fresh("late"));
    let slow = JoinableQueue::<u64>::open(&url).unwrap();
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
    assert!(q.stats().is_err());
    let j = format!("{base}/{}", fresh("kinds-j"));
    JoinableQueue::<u64>::open(&j).unwrap();
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
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
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
    let q = Queue::<u64>::open(&url).unwrap();

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
                assert!(matches!(e, Error::Io { .. }), "{e:?}");
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
