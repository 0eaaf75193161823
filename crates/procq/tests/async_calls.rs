//! `get_async`, `put_async` and `join_async` across real processes (issue
//! #16): under tokio and under `futures_executor::block_on`, an executor
//! thread keeps running other tasks while a call waits for another process,
//! a cancelled call loses nothing, and shutdown ends a pending get.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procq::{Error, JoinableQueue, Queue};

const LIMIT: Duration = Duration::from_secs(60);

/// Dispatches child roles (does nothing in a normal test run).
#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let arg = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role.as_str() {
        "put-after" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            std::thread::sleep(Duration::from_millis(num(1)));
            q.put(&num(2)).unwrap();
        }
        "get-after" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            std::thread::sleep(Duration::from_millis(num(1)));
            q.get_timeout(LIMIT).unwrap();
        }
        "done-after" => {
            let q = JoinableQueue::<u64>::open(arg(0)).unwrap();
            q.get_timeout(LIMIT).unwrap();
            std::thread::sleep(Duration::from_millis(num(1)));
            q.task_done().unwrap();
        }
        "shutdown-after" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            std::thread::sleep(Duration::from_millis(num(1)));
            q.shutdown(false).unwrap();
        }
        // Puts 0..n, pausing now and then so that the getter waits often:
        // briefly every 7 items, and every 50 for longer than any getter's
        // patience (at most ~1 ms, on a timer of 1 ms granularity), so
        // that some gets are certainly dropped while they wait.
        "produce" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            for i in 0..num(1) {
                q.put(&i).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                } else if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        }
        // Echoes n items from one queue to another (for the cost probe).
        "echo" => {
            let inbox = Queue::<u64>::open(arg(0)).unwrap();
            let outbox = Queue::<u64>::open(arg(1)).unwrap();
            for _ in 0..num(2) {
                outbox.put(&inbox.get_timeout(LIMIT).unwrap()).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Ticks every 10 ms until stopped; returns how many times it ticked.
async fn ticker(ticks: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_waiting_get_async_leaves_a_single_threaded_runtime_running() {
    let q = Queue::<u64>::new(0).unwrap();
    let mut child = common::spawn("put-after", &[q.name(), "400", "42"]);
    let ticks = Arc::new(AtomicU64::new(0));
    let rt = current_thread();
    let got = rt.block_on(async {
        let t = tokio::spawn(ticker(ticks.clone()));
        let got = q.get_async().await;
        t.abort();
        got
    });
    common::wait_ok(&mut child, LIMIT);
    assert_eq!(got.unwrap(), 42);
    // ~40 ticks while the get waited ~400 ms; a get that blocked the one
    // thread would have let through none. Generous for a loaded machine.
    let n = ticks.load(Ordering::Relaxed);
    assert!(
        n >= 5,
        "the runtime ticked only {n} times while get_async waited"
    );
}

#[test]
fn put_async_and_join_async_wait_for_other_processes_without_blocking() {
    let q = Queue::<u64>::new(1).unwrap();
    q.put(&1).unwrap();
    let mut child = common::spawn("get-after", &[q.name(), "300"]);
    let ticks = Arc::new(AtomicU64::new(0));
    let rt = current_thread();
    rt.block_on(async {
        let t = tokio::spawn(ticker(ticks.clone()));
        q.put_async(&2).await.unwrap(); // room made by the child
        t.abort();
    });
    common::wait_ok(&mut child, LIMIT);
    assert!(ticks.load(Ordering::Relaxed) >= 3);
    assert_eq!(q.get_nowait().unwrap(), 2);

    let jq = JoinableQueue::<u64>::new(0).unwrap();
    jq.put(&1).unwrap();
    let mut worker = common::spawn("done-after", &[jq.name(), "300"]);
    let ticks = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let t = tokio::spawn(ticker(ticks.clone()));
        jq.join_async().await.unwrap();
        t.abort();
    });
    common::wait_ok(&mut worker, LIMIT);
    assert!(ticks.load(Ordering::Relaxed) >= 3);
    assert_eq!(jq.unfinished_tasks().unwrap(), 0);
}

#[test]
fn futures_block_on_is_woken_by_another_process() {
    // A bare executor: no reactor, no timer; only the queue's waker.
    let q = Queue::<u64>::new(1).unwrap();
    let mut child = common::spawn("put-after", &[q.name(), "200", "7"]);
    assert_eq!(futures_executor::block_on(q.get_async()).unwrap(), 7);
    common::wait_ok(&mut child, LIMIT);
    q.put(&8).unwrap();
    let mut child = common::spawn("get-after", &[q.name(), "200"]);
    futures_executor::block_on(q.put_async(&9)).unwrap();
    common::wait_ok(&mut child, LIMIT);
    assert_eq!(q.get_nowait().unwrap(), 9);
    // Timeouts come from the waiter thread's timer, not from the executor.
    let t = Instant::now();
    let r = futures_executor::block_on(q.get_async_timeout(Duration::from_millis(100)));
    assert!(matches!(r, Err(Error::Empty)), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(100));
    q.put(&1).unwrap();
    let r = futures_executor::block_on(q.put_async_timeout(&2, Duration::from_millis(100)));
    assert!(matches!(r, Err(Error::Full)), "{r:?}");
}

#[test]
fn cancelled_get_async_calls_lose_nothing() {
    const N: u64 = 3_000;
    let q = Queue::<u64>::new(4).unwrap();
    let mut producer = common::spawn("produce", &[q.name(), &N.to_string()]);
    // Deadlines from 0 to ~1 ms: many gets are dropped while pending, at
    // every stage of their wait.
    let (got, cancelled) = common::get_with_cancellations(
        N,
        Duration::from_micros(1100),
        LIMIT,
        || q.get_async(),
        |_| {},
    );
    common::wait_ok(&mut producer, LIMIT);
    assert!(
        cancelled > 0,
        "no get was cancelled: the test tested nothing"
    );
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len() as u64, N, "lost or duplicated items");
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "FIFO order");
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

#[test]
fn shutdown_by_another_process_ends_a_pending_get_async() {
    let q = Queue::<u64>::new(0).unwrap();
    let mut child = common::spawn("shutdown-after", &[q.name(), "200"]);
    let rt = current_thread();
    let r = rt.block_on(q.get_async());
    assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
    common::wait_ok(&mut child, LIMIT);
    assert!(matches!(
        futures_executor::block_on(q.put_async(&1)),
        Err(Error::ShutDown)
    ));
}

#[test]
fn the_last_handle_detaches_at_once_after_async_waits() {
    let name = common::unique("async-detach");
    let q = procq::Builder::new().name(&name).build::<u64>().unwrap();
    let mut child = common::spawn("put-after", &[q.name(), "100", "1"]);
    futures_executor::block_on(q.get_async()).unwrap();
    common::wait_ok(&mut child, LIMIT);
    // The waiter thread slept on the queue a moment ago; dropping the
    // last handle must still remove the queue, now.
    drop(q);
    assert!(!common::segment_exists(&name), "queue left behind");
}

/// The cost of waking a future through the waiter thread, against a
/// blocking `get`: round trips to an echoing process. A measurement, not a
/// test (run with `--ignored --nocapture`): numbers on a shared machine.
#[test]
#[ignore]
fn cost_of_an_async_wake_up() {
    const N: u64 = 20_000;
    let round_trips = |use_async: bool| {
        let (ping, pong) = (Queue::<u64>::new(0).unwrap(), Queue::<u64>::new(0).unwrap());
        let mut echo = common::spawn("echo", &[ping.name(), pong.name(), &N.to_string()]);
        let t = Instant::now();
        for i in 0..N {
            ping.put(&i).unwrap();
            let back = if use_async {
                futures_executor::block_on(pong.get_async()).unwrap()
            } else {
                pong.get().unwrap()
            };
            assert_eq!(back, i);
        }
        let per = t.elapsed() / N as u32;
        common::wait_ok(&mut echo, LIMIT);
        per
    };
    let blocking = round_trips(false);
    let future = round_trips(true);
    let (ready_b, ready_a) = {
        let q = Queue::<u64>::new(0).unwrap();
        let t = Instant::now();
        for i in 0..N {
            q.put(&i).unwrap();
            q.get().unwrap();
        }
        let b = t.elapsed() / N as u32;
        let t = Instant::now();
        for i in 0..N {
            q.put(&i).unwrap();
            futures_executor::block_on(q.get_async()).unwrap();
        }
        (b, t.elapsed() / N as u32)
    };
    println!(
        "round trip to another process: blocking get {blocking:?}, get_async {future:?}; \
         item ready (no wait): get {ready_b:?}, get_async {ready_a:?}"
    );
}
