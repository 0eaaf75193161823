//! The contract's async calls (`get_async`, `put_async`, `join_async` and
//! their timeouts), run against every backend present like
//! `tests/contract.rs` (which says how): they wait for other processes
//! without blocking a runtime, under tokio and a bare executor, and a
//! cancelled call loses nothing.

mod common;
mod contract_support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{role, spawn, wait_ok};
use contract_support::*;
use procq::{Error, JoinableQueue, Queue};

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    contract_support::run_role(&role, &args);
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Ticks every 10 ms until aborted.
async fn ticker(ticks: std::sync::Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn async_calls_wait_for_other_processes_without_blocking_a_single_threaded_runtime() {
    each_backend(|on| {
        let rt = current_thread();
        let ticks = std::sync::Arc::new(AtomicU64::new(0));
        let ticked = |f: &dyn Fn()| {
            ticks.store(0, Ordering::Relaxed);
            f();
            ticks.load(Ordering::Relaxed)
        };
        // get_async, woken by a put 400 ms later in another process.
        let (q, _rm) = make::<u64>(on, "async-get", 0);
        let mut children = Children(vec![spawn("put_later", &[q.name(), "400", "42"])]);
        let n = ticked(&|| {
            let got = rt.block_on(async {
                let t = tokio::spawn(ticker(ticks.clone()));
                let got = q.get_async().await;
                t.abort();
                got
            });
            assert_eq!(got.unwrap(), 42);
        });
        // ~40 ticks; a get that held the one thread would let none through.
        assert!(n >= 5, "ticked {n} times while get_async waited");
        // put_async on a full queue, room made by another process.
        let (b, _rm2) = make::<u64>(on, "async-put", 1);
        b.put(&1).unwrap();
        children.0.push(spawn("get_later", &[b.name(), "300"]));
        let n = ticked(&|| {
            rt.block_on(async {
                let t = tokio::spawn(ticker(ticks.clone()));
                b.put_async(&2).await.unwrap();
                t.abort();
            })
        });
        assert!(n >= 3, "ticked {n} times while put_async waited");
        // join_async, done by another process.
        let (j, _rm3) = make_joinable(on, "async-join");
        let (up, _rm4) = make::<u64>(on, "async-up", 0);
        let (down, _rm5) = make::<u64>(on, "async-down", 0);
        j.put(&1).unwrap();
        children
            .0
            .push(spawn("take_one", &[j.name(), up.name(), down.name()]));
        up.get_timeout(Duration::from_secs(30)).unwrap();
        let n = ticked(&|| {
            rt.block_on(async {
                let t = tokio::spawn(ticker(ticks.clone()));
                let (joined, ()) = tokio::join!(j.join_async(), async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    down.put_async(&1).await.unwrap();
                });
                joined.unwrap();
                t.abort();
            })
        });
        assert!(n >= 3, "ticked {n} times while join_async waited");
        for c in &mut children.0 {
            wait_ok(c, Duration::from_secs(30));
        }
        assert_eq!(b.get_nowait().unwrap(), 2);
    });
}

#[test]
fn async_calls_under_a_bare_executor_and_their_timeouts() {
    each_backend(|on| {
        use futures_executor::block_on;
        let (q, _rm) = make::<u64>(on, "bare", 1);
        let mut children = Children(vec![spawn("put_later", &[q.name(), "200", "7"])]);
        assert_eq!(block_on(q.get_async()).unwrap(), 7);
        q.put(&8).unwrap();
        children.0.push(spawn("get_later", &[q.name(), "200"]));
        block_on(q.put_async(&9)).unwrap();
        for c in &mut children.0 {
            wait_ok(c, Duration::from_secs(30));
        }
        assert_eq!(q.get_nowait().unwrap(), 9);
        let t = Instant::now();
        let r = block_on(q.get_async_timeout(Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        assert!(t.elapsed() >= Duration::from_millis(100));
        q.put(&1).unwrap();
        let r = block_on(q.put_async_timeout(&2, Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Full)), "{r:?}");
        let (j, _rm2) = make_joinable(on, "bare-j");
        j.put(&1).unwrap();
        let r = block_on(j.join_async_timeout(Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert_eq!(block_on(j.get_async()).unwrap(), 1);
        j.task_done().unwrap();
        block_on(j.join_async()).unwrap();
    });
}

#[test]
fn cancelled_async_gets_lose_nothing() {
    each_backend(|on| {
        let mut total_cancelled = 0;
        for (tag, maxsize, joinable) in [
            ("c-plain", 0, false),
            ("c-bounded", 4, false),
            ("c-j", 0, true),
        ] {
            // On Redis a round counts only if some get was cancelled while
            // items flowed; the producer's pauses make the getter wait
            // often, but on a loaded machine a round may still find the
            // queue never empty (a cold CI run did once), so it gets three
            // tries. (On shared memory a get on an unbounded queue may
            // never wait: there the three queues' cancellations are
            // counted together, below.)
            let mut cancelled = 0;
            for _try in 0..3 {
                cancelled = cancelled_gets_round(on, tag, maxsize, joinable);
                if cancelled > 0 || matches!(on, On::Shm) {
                    break;
                }
            }
            assert!(
                cancelled > 0 || matches!(on, On::Shm),
                "{tag}: no get was cancelled in 3 rounds: the test tested nothing"
            );
            total_cancelled += cancelled;
        }
        assert!(
            total_cancelled > 0,
            "no get was cancelled: the test tested nothing"
        );
    });
}

/// One round of `cancelled_async_gets_lose_nothing`: a producer process
/// puts 0..n while this process gets them with deadlines that cancel many
/// gets at every stage; every item arrives once (in order on shared
/// memory). Returns how many gets were cancelled.
fn cancelled_gets_round(on: &On, tag: &str, maxsize: usize, joinable: bool) -> u64 {
    let (n, pause_us): (u64, u64) = if matches!(on, On::Shm) {
        (3_000, 300)
    } else {
        (400, 5_000)
    };
    let loc = fresh(on, tag);
    let _rm = Remove(loc.clone());
    let (q, j) = if joinable {
        let j = JoinableQueue::<u64>::open_or_create(&loc, maxsize).unwrap();
        (None, Some(j))
    } else {
        (
            Some(Queue::<u64>::open_or_create(&loc, maxsize).unwrap()),
            None,
        )
    };
    let mut children = Children(vec![spawn(
        "produce_n",
        &[&loc, &n.to_string(), &pause_us.to_string()],
    )]);
    // Deadlines from 0 to ~1 ms, or ~3 ms on a plain unbounded queue: many
    // gets are dropped at every stage.
    let spread = Duration::from_micros(if q.is_some() && maxsize == 0 {
        3100
    } else {
        1100
    });
    let get = || -> Pin<Box<dyn Future<Output = procq::Result<u64>> + '_>> {
        match (&q, &j) {
            (Some(q), _) => Box::pin(q.get_async()),
            (_, Some(j)) => Box::pin(j.get_async()),
            _ => unreachable!(),
        }
    };
    let done = |_| {
        if let Some(j) = &j {
            j.task_done().unwrap();
        }
    };
    let (got, cancelled) =
        common::get_with_cancellations(n, spread, Duration::from_secs(60), get, done);
    for c in &mut children.0 {
        wait_ok(c, Duration::from_secs(60));
    }
    let unique: std::collections::HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len() as u64, n, "{tag}: lost or duplicated items");
    // (Redis: a get cancelled after its worker took an item puts it back
    // at the head, so the order may differ; see calls.rs.)
    if matches!(on, On::Shm) {
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "FIFO order");
    }
    if let Some(j) = &j {
        j.join_timeout(Duration::from_secs(10)).unwrap();
    }
    cancelled
}

#[test]
fn a_cancelled_put_async_puts_nothing_once_cancelled_and_shutdown_ends_a_pending_get_async() {
    each_backend(|on| {
        let (q, _rm) = make::<u64>(on, "cancel-put", 1);
        q.put(&1).unwrap();
        let rt = current_thread();
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), q.put_async(&2)).await
        });
        assert!(r.is_err(), "the put cannot have completed: {r:?}");
        // Room now: the cancelled put must not take it.
        assert_eq!(q.get_nowait().unwrap(), 1);
        std::thread::sleep(Duration::from_millis(600));
        assert!(matches!(q.get_nowait(), Err(Error::Empty)));

        let (p, _rm2) = make::<u64>(on, "async-shut", 0);
        let mut children = Children(vec![spawn("shutdown_later", &[p.name(), "300"])]);
        let t = Instant::now();
        let r = rt.block_on(p.get_async());
        assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(10));
        wait_ok(&mut children.0[0], Duration::from_secs(30));
        assert!(matches!(
            futures_executor::block_on(p.put_async(&1)),
            Err(Error::ShutDown)
        ));
    });
}
