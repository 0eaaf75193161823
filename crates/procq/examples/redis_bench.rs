//! procq on Redis (one server, and a Redis Cluster) vs a plain Redis list
//! queue vs procq on shared memory.
//!
//! ```text
//! redis-server --port 6390 --save "" --appendonly no &
//! cargo run --release -p procq --features redis --example redis_bench -- \
//!     redis://127.0.0.1:6390/0 [redis+cluster://127.0.0.1:7001,127.0.0.1:7002 | - [items]]
//! ```
//!
//! (`scripts/test.d/50-redis.sh` starts such a server and a 3-master
//! cluster; `PROCQ_REDIS_URL` / `PROCQ_REDIS_CLUSTER_URL` stand in for the
//! arguments.) Cases, with 100-byte items, 1 producer/1 consumer and 4/4
//! (threads, each with its own connection or handle, as separate processes
//! would have):
//! - `raw list, 1 cmd/item`: `LPUSH` per item, `BRPOP` per item;
//! - `raw list, pipelined`: batches of 100 `LPUSH` / one `LPOP key 100`;
//! - `procq put/get`: `Queue::put` / `Queue::get` per item;
//! - `procq put_many/get_many`: batches of 100;
//! - `procq bounded ...`: the same on a queue of maxsize 1024 (each `get`
//!   is a script that also signals waiting putters);
//! - `procq joinable get+task_done`: a `JoinableQueue`, `put` / `get` then
//!   `task_done` per item (at-least-once: `get` moves the item to the
//!   consumer's in-flight hash, `task_done` acknowledges it by id);
//! - `procq joinable batched`: `put_many` / `get_many` of 100, then one
//!   `task_done_many` per batch;
//! - the procq cases again on the cluster (no bounded rows);
//! - `procq shm put/get`, `put_many/get_many`: the same on shared memory.
//!
//! Single-item cases move `items` (default 10 000), batched cases ten times
//! as many; each case runs three times and the median is kept. Prints items/s per case
//! and the ratios the Redis backend targets. `REDIS_BENCH_CASES=word,word`
//! runs only the cases whose names contain one of the words (the targets
//! then print `NaN` for cases not run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use procq::{JoinableQueue, Queue};

const ITEM: usize = 100;
const BATCH: usize = 100;

fn item() -> Vec<u8> {
    // A Vec<u8> of 99 bytes encodes to 100 bytes (1-byte length prefix).
    vec![7u8; ITEM - 1]
}

/// Runs `p` producer threads and `c` consumer threads, each moving its
/// share of `n` items; returns items per second.
fn run(
    n: usize,
    p: usize,
    c: usize,
    produce: Arc<dyn Fn(usize) + Send + Sync>,
    consume: Arc<dyn Fn(usize) + Send + Sync>,
) -> f64 {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..p {
        let f = produce.clone();
        threads.push(std::thread::spawn(move || f(n / p)));
    }
    for _ in 0..c {
        let f = consume.clone();
        threads.push(std::thread::spawn(move || f(n / c)));
    }
    for t in threads {
        t.join().expect("bench thread");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn raw_single(server: &str, key: &str, n: usize, pc: usize) -> f64 {
    let client = redis::Client::open(server).expect("client");
    let (c1, c2) = (client.clone(), client);
    let (k1, k2) = (key.to_owned(), key.to_owned());
    run(
        n,
        pc,
        pc,
        Arc::new(move |m| {
            let mut con = c1.get_connection().expect("connect");
            let it = item();
            for _ in 0..m {
                redis::cmd("LPUSH")
                    .arg(&k1)
                    .arg(&it)
                    .query::<i64>(&mut con)
                    .expect("LPUSH");
            }
        }),
        Arc::new(move |m| {
            let mut con = c2.get_connection().expect("connect");
            for _ in 0..m {
                let _: (String, Vec<u8>) = redis::cmd("BRPOP")
                    .arg(&k2)
                    .arg(10)
                    .query(&mut con)
                    .expect("BRPOP");
            }
        }),
    )
}

fn raw_batched(server: &str, key: &str, n: usize, pc: usize) -> f64 {
    let client = redis::Client::open(server).expect("client");
    let (c1, c2) = (client.clone(), client);
    let (k1, k2) = (key.to_owned(), key.to_owned());
    run(
        n,
        pc,
        pc,
        Arc::new(move |m| {
            let mut con = c1.get_connection().expect("connect");
            let it = item();
            let mut left = m;
            while left > 0 {
                let k = left.min(BATCH);
                let mut pipe = redis::pipe();
                for _ in 0..k {
                    pipe.cmd("LPUSH").arg(&k1).arg(&it).ignore();
                }
                pipe.query::<()>(&mut con).expect("pipeline");
                left -= k;
            }
        }),
        Arc::new(move |m| {
            let mut con = c2.get_connection().expect("connect");
            let mut got = 0;
            while got < m {
                let want = (m - got).min(BATCH);
                let v: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
                    .arg(&k2)
                    .arg(want)
                    .query(&mut con)
                    .expect("RPOP");
                match v {
                    Some(v) => got += v.len(),
                    None => {
                        // Empty: block for one, as a consumer would.
                        let r: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
                            .arg(&k2)
                            .arg(10)
                            .query(&mut con)
                            .expect("BRPOP");
                        got += usize::from(r.is_some());
                    }
                }
            }
        }),
    )
}

/// How a procq case uses its queue.
#[derive(Clone, Copy)]
struct Mode {
    /// `put_many` / `get_many` of [`BATCH`] instead of one item per call.
    batched: bool,
    /// 0 = unbounded.
    maxsize: usize,
    /// A `JoinableQueue`, with a `task_done` per item got.
    joinable: bool,
}

const SINGLE: Mode = Mode {
    batched: false,
    maxsize: 0,
    joinable: false,
};
const BATCHED: Mode = Mode {
    batched: true,
    ..SINGLE
};

fn procq_case(loc: &str, n: usize, pc: usize, mode: Mode) -> f64 {
    // A joinable queue's consumers acknowledge through the handle they got
    // from; a plain queue's use a plain handle.
    let (plain, joinable) = if mode.joinable {
        let j = JoinableQueue::<Vec<u8>>::open_or_create(loc, mode.maxsize).expect("open");
        (j.as_queue().clone(), Some(j))
    } else {
        let q = Queue::<Vec<u8>>::open_or_create(loc, mode.maxsize).expect("open");
        (q, None)
    };
    let (q1, q2, j2) = (plain.clone(), plain, joinable.clone());
    let rate = run(
        n,
        pc,
        pc,
        Arc::new(move |m| {
            let q = q1.clone();
            let it = item();
            if mode.batched {
                let batch = vec![it; BATCH];
                let mut left = m;
                while left > 0 {
                    let k = left.min(BATCH);
                    q.put_many(&batch[..k]).expect("put_many");
                    left -= k;
                }
            } else {
                for _ in 0..m {
                    q.put(&it).expect("put");
                }
            }
        }),
        Arc::new(move |m| {
            let j = j2.clone();
            let plain = q2.clone();
            let q: &Queue<Vec<u8>> = j.as_ref().map_or(&plain, JoinableQueue::as_queue);
            let done = |k: usize| {
                if let Some(j) = &j {
                    if mode.batched {
                        j.task_done_many(k).expect("task_done_many");
                    } else {
                        for _ in 0..k {
                            j.task_done().expect("task_done");
                        }
                    }
                }
            };
            let mut got = 0;
            while got < m {
                let k = if mode.batched {
                    q.get_many_timeout((m - got).min(BATCH), Duration::from_secs(10))
                        .expect("get_many")
                        .len()
                } else {
                    q.get_timeout(Duration::from_secs(10)).expect("get");
                    1
                };
                done(k);
                got += k;
            }
        }),
    );
    if let Some(j) = joinable {
        j.join_timeout(Duration::from_secs(10)).expect("join");
    }
    rate
}

/// Where a case runs.
#[derive(Clone, Copy, PartialEq)]
enum On {
    /// A plain Redis list, one command per item.
    RawSingle,
    /// A plain Redis list, pipelined batches.
    RawBatched,
    Redis,
    Cluster,
    Shm,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .or_else(|| std::env::var("PROCQ_REDIS_URL").ok())
        .expect("usage: redis_bench redis://host:port/db [redis+cluster://host:port,… [items]]");
    let cluster = args
        .next()
        .or_else(|| std::env::var("PROCQ_REDIS_CLUSTER_URL").ok())
        .filter(|c| !c.is_empty() && c != "-");
    let n: usize = args.next().map_or(10_000, |s| s.parse().expect("items"));
    let tag = std::process::id();
    println!(
        "{n} items of {ITEM} B per single-item case, batches of {BATCH} with {} items; \
         median of 3 runs\n",
        n * 10
    );
    println!(
        "{:<44} {:>14} {:>14}",
        "case", "1P/1C items/s", "4P/4C items/s"
    );
    let bounded = Mode {
        maxsize: 1024,
        ..SINGLE
    };
    let joinable = Mode {
        joinable: true,
        ..SINGLE
    };
    let batched = |m: Mode| Mode { batched: true, ..m };
    let mut cases: Vec<(String, On, Mode)> = vec![
        ("raw list, 1 cmd/item".into(), On::RawSingle, SINGLE),
        (
            "raw list, pipelined batches".into(),
            On::RawBatched,
            BATCHED,
        ),
    ];
    let mut targets = vec![("redis", On::Redis)];
    if cluster.is_some() {
        targets.push(("cluster", On::Cluster));
    }
    for (label, on) in &targets {
        cases.push((format!("procq {label} put/get"), *on, SINGLE));
        cases.push((format!("procq {label} put_many/get_many"), *on, BATCHED));
        if *on == On::Redis {
            cases.push((format!("procq {label} bounded(1024) put/get"), *on, bounded));
            cases.push((
                format!("procq {label} bounded put_many/get_many"),
                *on,
                batched(bounded),
            ));
        }
        cases.push((
            format!("procq {label} joinable get+task_done"),
            *on,
            joinable,
        ));
        cases.push((
            format!("procq {label} joinable batched (task_done_many)"),
            *on,
            batched(joinable),
        ));
    }
    cases.push(("procq shm put/get".into(), On::Shm, SINGLE));
    cases.push(("procq shm put_many/get_many".into(), On::Shm, BATCHED));
    // REDIS_BENCH_CASES=a,b runs only the cases whose names contain one of
    // those words (to measure a few cases without the whole run).
    if let Ok(only) = std::env::var("REDIS_BENCH_CASES") {
        let words: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
        cases.retain(|(name, _, _)| words.iter().any(|w| name.contains(w)));
    }
    let mut table: Vec<(String, [f64; 2])> = Vec::new();
    for (which, (name, on, mode)) in cases.iter().enumerate() {
        let mut row = [0.0; 2];
        for (i, pc) in [1, 4].into_iter().enumerate() {
            // Every case runs three times (the median is kept), batches with
            // ten times the items: one short run says little on a busy
            // machine.
            let items = if mode.batched { n * 10 } else { n };
            let reps = 3;
            let mut rates: Vec<f64> = (0..reps)
                .map(|rep| {
                    let key = format!("bench-{tag}-{which}-{pc}-{rep}");
                    match on {
                        On::RawSingle => raw_single(&server, &key, items, pc),
                        On::RawBatched => raw_batched(&server, &key, items, pc),
                        On::Redis => procq_case(&format!("{server}/{key}"), items, pc, *mode),
                        On::Cluster => {
                            let c = cluster.as_deref().unwrap_or_default();
                            let rate = procq_case(&format!("{c}/{key}"), items, pc, *mode);
                            let _ = procq::remove(&format!("{c}/{key}"));
                            rate
                        }
                        On::Shm => procq_case(&key, items, pc, *mode),
                    }
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            row[i] = rates[rates.len() / 2];
        }
        println!("{name:<44} {:>14.0} {:>14.0}", row[0], row[1]);
        table.push((name.clone(), row));
    }
    let rate = |name: &str| {
        table
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
            .unwrap_or([f64::NAN; 2])
    };
    println!("\nTargets:");
    for (i, pc) in ["1P/1C", "4P/4C"].iter().enumerate() {
        let raw = rate("raw list, 1 cmd/item")[i];
        let single = rate("procq redis put/get")[i];
        let batch = rate("procq redis put_many/get_many")[i];
        println!(
            "  {pc} redis: raw 1-cmd / procq single = {:.2}x (target <= 1.5x) {}; \
             procq batched / single = {:.1}x (target >= 10x) {}",
            raw / single,
            if raw / single <= 1.5 { "MET" } else { "MISSED" },
            batch / single,
            if batch / single >= 10.0 {
                "MET"
            } else {
                "MISSED"
            },
        );
        for (label, _) in &targets {
            let plain = rate(&format!("procq {label} put_many/get_many"))[i];
            let joined = rate(&format!("procq {label} joinable batched (task_done_many)"))[i];
            println!(
                "  {pc} {label}: plain batched / joinable batched = {:.2}x (target <= 2x) {}",
                plain / joined,
                if plain / joined <= 2.0 {
                    "MET"
                } else {
                    "MISSED"
                },
            );
        }
    }
    // Leave nothing behind on the server.
    if let Ok(mut con) = redis::Client::open(server.as_str()).and_then(|c| c.get_connection()) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*bench-{tag}-*"))
            .query(&mut con)
            .unwrap_or_default();
        for k in keys {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(k).query(&mut con);
        }
    }
}
