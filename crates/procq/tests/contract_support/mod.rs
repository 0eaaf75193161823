//! What the contract suites share (`tests/contract.rs`, the synchronous
//! calls; `tests/contract_async.rs`, the async ones): the child roles, the
//! backends present, fresh queue locations and the guards that clean up.
//! See `tests/contract.rs` for what the contract is. The Redis suites
//! (`tests/redis*.rs`) run these child roles too, beside their own.
#![allow(dead_code)]

use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procq::{Error, JoinableQueue, Queue};

pub const SENTINEL: u64 = u64::MAX;

/// Runs the child role `role` with `args` (each suite's `child_entry`
/// dispatches here).
pub fn run_role(role: &str, args: &[String]) {
    let a = |i: usize| args[i].as_str();
    match role {
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
        "get_until_shutdown" => {
            // Says it is ready, blocks in get on an empty queue (a
            // JoinableQueue if a(2) is "j"): must end with ShutDown.
            let ready = Queue::<u64>::open(a(1)).unwrap();
            let r = if a(2) == "j" {
                let q = JoinableQueue::<u64>::open(a(0)).unwrap();
                ready.put(&1).unwrap();
                q.get_timeout(Duration::from_secs(30))
            } else {
                let q = Queue::<u64>::open(a(0)).unwrap();
                ready.put(&1).unwrap();
                q.get_timeout(Duration::from_secs(30))
            };
            assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
        }
        "put_until_shutdown" => {
            // Says it is ready, blocks in put on a full queue: must end
            // with ShutDown.
            let q = Queue::<u64>::open(a(0)).unwrap();
            Queue::<u64>::open(a(1)).unwrap().put(&1).unwrap();
            let r = q.put_timeout(&7, Duration::from_secs(30));
            assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
        }
        "produce_until_shutdown" => {
            // Puts its own numbered items until refused; reports how many
            // were accepted as id << 32 | count.
            let q = Queue::<u64>::open(a(0)).unwrap();
            let accepted = Queue::<u64>::open(a(1)).unwrap();
            let id: u64 = a(2).parse().unwrap();
            let mut n = 0u64;
            loop {
                match q.put_timeout(&(id << 32 | n), Duration::from_secs(30)) {
                    Ok(()) => n += 1,
                    Err(Error::ShutDown) => break,
                    Err(e) => panic!("put: {e}"),
                }
            }
            accepted.put(&(id << 32 | n)).unwrap();
        }
        "hold" => {
            // Takes one task, reports it, and never finishes it (the test
            // kills it holding the task).
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let got = Queue::<u64>::open(a(1)).unwrap();
            let x = q.get_timeout(Duration::from_secs(30)).unwrap();
            got.put(&x).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "take_one" => {
            // Takes a task, says so, and finishes it when told.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let up = Queue::<u64>::open(a(1)).unwrap();
            let down = Queue::<u64>::open(a(2)).unwrap();
            q.get_timeout(Duration::from_secs(30)).unwrap();
            up.put(&1).unwrap();
            down.get_timeout(Duration::from_secs(30)).unwrap();
            q.task_done().unwrap();
        }
        "join" => {
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            q.join_timeout(Duration::from_secs(30)).unwrap();
        }
        "produce_n" => {
            // Puts 0..n, pausing a(2) µs after every 7th item so that the
            // getter drains the queue and waits often.
            let q = Queue::<u64>::open(a(0)).unwrap();
            let pause = Duration::from_micros(a(2).parse().unwrap());
            for i in 0..a(1).parse().unwrap() {
                q.put_timeout(&i, Duration::from_secs(30)).unwrap();
                if i % 7 == 0 {
                    std::thread::sleep(pause);
                }
            }
        }
        "shutdown_later" => {
            let q = Queue::<u64>::open(a(0)).unwrap();
            std::thread::sleep(Duration::from_millis(a(1).parse().unwrap()));
            q.shutdown(false).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// The `n` items the children sent to `results`, sorted (each get waits
/// 20 s at most).
pub fn drain(results: &Queue<u64>, n: usize) -> Vec<u64> {
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

/// Child processes killed and reaped when the test ends, however it ends.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a test's queues live.
#[derive(Clone, Debug)]
pub enum On {
    /// Shared memory on this machine.
    Shm,
    /// The Redis database at this URL (`redis://host:port/db`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Redis(String),
}

/// Every backend present (see the module docs).
pub fn backends() -> Vec<On> {
    let mut all = vec![On::Shm];
    match std::env::var("PROCQ_REDIS_URL") {
        Ok(url) if !url.is_empty() && cfg!(feature = "redis") => all.push(On::Redis(url)),
        Ok(url) if !url.is_empty() => {
            eprintln!("SKIP Redis: PROCQ_REDIS_URL is set but procq was built without `redis`")
        }
        _ => eprintln!(
            "SKIP Redis: PROCQ_REDIS_URL is not set; scripts/test.d/50-redis.sh runs these \
             tests against a redis-server too"
        ),
    }
    all
}

/// Runs `f` on every backend present.
pub fn each_backend(f: impl Fn(&On)) {
    for on in backends() {
        eprintln!("backend {on:?}");
        f(&on);
    }
}

/// A queue location unique to this process: a name, or a URL on the server.
pub fn fresh(on: &On, tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "contract-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    match on {
        On::Shm => name,
        On::Redis(base) => format!("{base}/{name}"),
    }
}

/// Removes a queue when the test ends, however it ends (a shared-memory
/// queue also goes with its last handle; a Redis queue stays on the server
/// until removed).
pub struct Remove(pub String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = procq::remove(&self.0);
    }
}

/// Creates a fresh queue with `maxsize` on `on`. Returns the first handle
/// (it keeps a shared-memory queue alive) and what removes it.
pub fn make<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    on: &On,
    tag: &str,
    maxsize: usize,
) -> (Queue<T>, Remove) {
    let loc = fresh(on, tag);
    (Queue::open_or_create(&loc, maxsize).unwrap(), Remove(loc))
}

pub fn make_joinable(on: &On, tag: &str) -> (JoinableQueue<u64>, Remove) {
    let loc = fresh(on, tag);
    (JoinableQueue::open_or_create(&loc, 0).unwrap(), Remove(loc))
}
