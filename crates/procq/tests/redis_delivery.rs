//! At-least-once delivery of a Redis `JoinableQueue`, against the real
//! `redis-server` of `scripts/test.d/50-redis.sh` (`PROCQ_REDIS_URL`):
//! consumers killed, stopped past their lease, or sharing a handle between
//! threads; a `get` whose reply is lost; poison messages; a batch finished
//! in part. Each test is a promise of docs/redis.md. Without
//! `PROCQ_REDIS_URL` every test prints why it skips.
#![cfg(feature = "redis")]

mod common;
mod contract_support;
mod redis_support;

use std::time::{Duration, Instant};

use common::{role, spawn, watchdog, Reaped};
use procq::{Error, JoinableQueue, Queue};
use redis_support::{authority, fresh, server, signal, Lose, LossyProxy, OwnServer, SENTINEL};

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    let a = |i: usize| args[i].as_str();
    match role.as_str() {
        "pause_then_ack" => {
            // Gets x, waits for "go" (the test stops this process meanwhile,
            // past its lease), gets y, acknowledges x, and waits to be killed
            // holding y.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            let ctl = Queue::<u64>::open(a(2)).unwrap();
            let x = q.get_timeout(Duration::from_secs(30)).unwrap();
            out.put(&x).unwrap();
            // Waits for "go" in short polls, not in a blocking get: a
            // process stopped inside a plain queue's get and continued
            // re-reads what that get moved meanwhile (tested by
            // a_plain_consumer_stopped_and_continued_in_get_loses_no_item),
            // which is not what this test is about.
            let start = std::time::Instant::now();
            while ctl.get_nowait().is_err() {
                assert!(start.elapsed() < Duration::from_secs(60), "no go");
                std::thread::sleep(Duration::from_millis(5));
            }
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
        "plain_consumer" => {
            // A plain queue's consumer: forwards every item it gets, blocked
            // in get() in between (the test stops and continues it there),
            // until the sentinel.
            let q = Queue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            loop {
                let x = q.get_timeout(Duration::from_secs(60)).unwrap();
                out.put(&x).unwrap();
                if x == SENTINEL {
                    break;
                }
            }
        }
        "ack_then_idle" => {
            // Finishes one task, then a batch of three, reports, and then
            // makes no further call until it is killed: its last
            // acknowledgement's reply is never read by it.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            q.get_timeout(Duration::from_secs(30)).unwrap();
            q.task_done().unwrap();
            let batch = q.get_many_timeout(3, Duration::from_secs(30)).unwrap();
            assert_eq!(batch.len(), 3);
            q.task_done_many(3).unwrap();
            out.put(&SENTINEL).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "ack_when_told" => {
            // Gets an item and reports it; when told, acknowledges it and
            // reports that (x + 1000); then makes no call on the queue until
            // told to get the next one.
            let q = JoinableQueue::<u64>::open(a(0)).unwrap();
            let out = Queue::<u64>::open(a(1)).unwrap();
            let ctl = Queue::<u64>::open(a(2)).unwrap();
            loop {
                let x = q.get_timeout(Duration::from_secs(30)).unwrap();
                out.put(&x).unwrap();
                ctl.get_timeout(Duration::from_secs(60)).unwrap();
                q.task_done().unwrap();
                out.put(&(x + 1000)).unwrap();
                ctl.get_timeout(Duration::from_secs(60)).unwrap();
            }
        }
        other => contract_support::run_role(other, &args),
    }
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

/// `task_done` does not wait for its reply (docs/redis.md, "Batches"), but
/// the server runs it at once: a `join()` elsewhere returns while the
/// consumer that acknowledged makes no further call (and so never reads
/// that reply).
#[test]
fn a_task_done_is_seen_by_join_elsewhere_while_its_consumer_idles() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}", fresh("ackidle"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let out = Queue::<u64>::open_or_create(&format!("{base}/{}", fresh("ackidle-out")), 0).unwrap();
    q.put_many(&[1, 2, 3, 4]).unwrap();
    let mut child = Reaped(spawn("ack_then_idle", &[&url, out.name()]));
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), SENTINEL);
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the consumer exited (dropping its handle reads its replies)"
    );
}

/// An acknowledgement sent without waiting whose connection then breaks —
/// before it reached the server, or after the server ran it and before its
/// reply came — is sent again by the consumer's heartbeat, while the
/// consumer makes no further call: a `join()` in another process returns
/// within a few ticks of the lease, and the acknowledgement counts once.
#[test]
fn an_acknowledgement_whose_connection_broke_is_sent_again_while_its_consumer_idles() {
    let Some(base) = server() else { return };
    let _dog = watchdog("ack_connection_broke", Duration::from_secs(120));
    let proxy = LossyProxy::start(authority(&base));
    let name = fresh("ackowed");
    let (out_url, ctl_url) = (fresh("ackowed-out"), fresh("ackowed-ctl"));
    let (out_url, ctl_url) = (format!("{base}/{out_url}"), format!("{base}/{ctl_url}"));
    let _rm = Remove(vec![
        format!("{base}/{name}"),
        out_url.clone(),
        ctl_url.clone(),
    ]);
    let q = JoinableQueue::<u64>::open_or_create(&format!("{base}/{name}"), 0).unwrap();
    let out = Queue::<u64>::open_or_create(&out_url, 0).unwrap();
    let ctl = Queue::<u64>::open_or_create(&ctl_url, 0).unwrap();
    let mut raw = redis::Client::open(base.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut unfinished_on_server = || -> i64 {
        redis::cmd("HGET")
            .arg(format!("procq:{{{name}}}:meta"))
            .arg("unfinished")
            .query(&mut raw)
            .unwrap()
    };
    // The consumer's heartbeat ticks every 300 ms.
    let via_proxy = format!(
        "redis://127.0.0.1:{}/0/{name}?lease_ms=900&timeout_ms=2000",
        proxy.port
    );
    let _child = Reaped(spawn("ack_when_told", &[&via_proxy, &out_url, &ctl_url]));
    // Of the keys only a task_done's command names the meta key (the
    // heartbeat's renewal names the leases key alone).
    let marker = format!("procq:{{{name}}}:meta");
    // The first acknowledgement waits for its reply (it loads the script);
    // the later ones do not.
    for (round, lose) in [(0, None), (1, Some(Lose::Request)), (2, Some(Lose::Reply))] {
        let item = 10 * round + 1;
        q.put(&item).unwrap();
        assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), item);
        assert_eq!(unfinished_on_server(), 1);
        let lost_before = proxy.lost();
        if let Some(what) = lose {
            proxy.arm_to_lose(&marker, what);
        }
        ctl.put(&1).unwrap(); // task_done
        assert_eq!(
            out.get_timeout(Duration::from_secs(20)).unwrap(),
            item + 1000
        );
        let t = Instant::now();
        let joined = q.join_timeout(Duration::from_secs(4));
        assert!(
            joined.is_ok(),
            "round {round} ({lose:?}): join: {joined:?} after {:?} while the consumer idles",
            t.elapsed()
        );
        eprintln!(
            "round {round} ({lose:?}): join returned after {:?}",
            t.elapsed()
        );
        // Counted once, however often it was sent: still so a few ticks on.
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(unfinished_on_server(), 0, "round {round} ({lose:?})");
        // (A lost reply is counted by the proxy once it comes, which may
        // be after the join saw the acknowledgement.)
        assert_eq!(proxy.lost(), lost_before + u64::from(lose.is_some()));
        ctl.put(&1).unwrap(); // the next get
    }
    q.put(&99).unwrap();
    assert_eq!(out.get_timeout(Duration::from_secs(20)).unwrap(), 99);
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(300)),
        Err(Error::Timeout)
    ));
}

/// An acknowledgement sent without waiting to a server that lost its
/// scripts (`SCRIPT FLUSH`, as after a restart) is sent again once the
/// script is loaded, and counted once. On a server of its own: a flush
/// would disturb the other tests' scripts.
#[test]
fn a_task_done_after_the_server_lost_its_scripts_is_counted_once() {
    if server().is_none() {
        return;
    }
    let own = OwnServer::start("procq-ackflush", &[]);
    let base = own.base();
    let url = format!("{base}/{}", fresh("ackflush"));
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let other = JoinableQueue::<u64>::open(&url).unwrap();
    q.put_many(&[1, 2, 3, 4, 5]).unwrap();
    // The first acknowledgement waits for its reply (it loads the script).
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert_eq!(q.get_many(2).unwrap(), [2, 3]);
    let mut raw = redis::Client::open(base.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut raw)
        .unwrap();
    q.task_done_many(2).unwrap();
    // It did not run: the handle's next call (a get, sent before that
    // reply is read) reads the refusal, loads the script and sends it
    // again.
    assert_eq!(q.get_many(2).unwrap(), [4, 5]);
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut raw)
        .unwrap();
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    other.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
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
    // task_done does not wait for its reply: the handle's next call reads
    // it (here unfinished_tasks, which reads every reply still owed first).
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    assert_eq!(proxy.lost(), 2, "the proxy lost no reply");
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

/// Removes Redis queues when the test ends, however it ends.
struct Remove(Vec<String>);

impl Drop for Remove {
    fn drop(&mut self) {
        for url in &self.0 {
            let _ = procq::remove(url);
        }
    }
}

/// A joinable queue (600 ms leases) holding 11 and 12, and a child
/// process that got 11 and holds it in flight (it said so through a second
/// queue, also removed by the guard, which comes first so that it is
/// dropped last).
fn holding_11_of_11_and_12(base: &str, tag: &str) -> (Remove, JoinableQueue<u64>, Reaped) {
    let url = format!("{base}/{}?lease_ms=600", fresh(tag));
    let got_url = format!("{base}/{}", fresh(&format!("{tag}-got")));
    let rm = Remove(vec![url.clone(), got_url.clone()]);
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    let got = Queue::<u64>::open_or_create(&got_url, 0).unwrap();
    q.put_many(&[11, 12]).unwrap();
    let holder = Reaped(spawn("hold", &[&url, got.name()]));
    assert_eq!(got.get_timeout(Duration::from_secs(10)).unwrap(), 11);
    (rm, q, holder)
}

#[test]
fn a_task_of_a_consumer_killed_after_a_shutdown_is_still_handed_out() {
    let Some(base) = server() else { return };
    let (_rm, q, mut holder) = holding_11_of_11_and_12(&base, "shut-kill");
    q.shutdown(false).unwrap();
    holder.0.kill().unwrap(); // SIGKILL with 11 in flight
    holder.0.wait().unwrap();
    assert_eq!(q.get_nowait().unwrap(), 12);
    q.task_done().unwrap();
    // 11 is in flight, not in the queue: the stream ends here for now...
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    // ...but it was put before the shutdown: once its lease has run out
    // it is handed out again, and join waits for it.
    assert!(matches!(
        q.join_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(q.get_nowait().unwrap(), 11);
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(q.stats().unwrap().redeliveries, 1);
}

#[test]
fn after_an_immediate_shutdown_a_killed_consumers_task_is_dropped_and_join_returns() {
    let Some(base) = server() else { return };
    let (_rm, q, mut holder) = holding_11_of_11_and_12(&base, "imm-kill");
    q.shutdown(true).unwrap(); // drops 12, counted done
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    // join returns once the dead consumer's lease runs out: its task is
    // dropped then, as the shutdown dropped the rest.
    let t = Instant::now();
    q.join_timeout(Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    assert_eq!(q.qsize(), 0);
}

#[test]
fn a_batch_in_flight_at_an_immediate_shutdown_still_needs_its_task_done() {
    let Some(base) = server() else { return };
    let url = format!("{base}/{}", fresh("imm-batch"));
    let _rm = Remove(vec![url.clone()]);
    let q = JoinableQueue::<u64>::open_or_create(&url, 0).unwrap();
    q.put_many(&(0..10).collect::<Vec<_>>()).unwrap();
    assert_eq!(q.get_many(4).unwrap(), [0, 1, 2, 3]);
    q.shutdown(true).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 4);
    assert!(matches!(q.get_many(4), Err(Error::ShutDown)));
    q.task_done().unwrap();
    assert!(matches!(
        q.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    q.task_done_many(3).unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
}

/// A plain queue's consumer stopped (SIGSTOP) while blocked in `get()` and
/// continued: its socket read fails with EINTR, and the reply to the get
/// that took an item meanwhile is never read. Every item put must still be
/// got exactly once, by the consumer or by the test.
#[test]
fn a_plain_consumer_stopped_and_continued_in_get_loses_no_item() {
    let Some(base) = server() else { return };
    let _dog = watchdog("plain_consumer_stopped", Duration::from_secs(120));
    let url = format!("{base}/{}", fresh("stop-plain"));
    let out_url = format!("{base}/{}", fresh("stop-plain-out"));
    let _rm = Remove(vec![url.clone(), out_url.clone()]);
    let q = Queue::<u64>::open_or_create(&url, 0).unwrap();
    let out = Queue::<u64>::open_or_create(&out_url, 0).unwrap();
    let child = Reaped(spawn("plain_consumer", &[&url, &out_url]));
    // The consumer is up and blocked in get() once it forwarded item 0.
    q.put(&0).unwrap();
    let mut got_by_consumer = vec![out.get_timeout(Duration::from_secs(20)).unwrap()];
    let mut got_by_test = Vec::new();
    let mut put = vec![0];
    let mut taken_while_stopped = 0;
    let rounds = 5;
    for round in 0..rounds {
        // Blocked in get() again (it forwarded the last item and went back).
        std::thread::sleep(Duration::from_millis(300));
        common::signal(&child.0, libc::SIGSTOP);
        let items: Vec<u64> = (1..=3).map(|i| round * 10 + i).collect();
        q.put_many(&items).unwrap();
        put.extend(&items);
        // The stopped consumer's blocked get takes the first one on the
        // server at once; only its reply waits in the socket. (Unless the
        // stop caught it between two of its wait slices, or its slice ran
        // out before the put: then no get is pending on the server and the
        // round moves nothing through the stopped consumer.)
        let t = Instant::now();
        while q.qsize() != 2 && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        taken_while_stopped += u32::from(q.qsize() == 2);
        while let Ok(x) = q.get_nowait() {
            got_by_test.push(x);
        }
        common::signal(&child.0, libc::SIGCONT);
        // What the consumer got (if anything survived), within a bound.
        while let Ok(x) = out.get_timeout(Duration::from_millis(1500)) {
            got_by_consumer.push(x);
        }
    }
    q.put(&SENTINEL).unwrap();
    let mut child = child;
    common::wait_ok(&mut child.0, Duration::from_secs(20));
    while let Ok(x) = out.get_timeout(Duration::from_millis(500)) {
        got_by_consumer.push(x);
    }
    assert!(
        taken_while_stopped > 0,
        "in no round did the stopped get take an item"
    );
    assert_eq!(got_by_consumer.pop(), Some(SENTINEL));
    let mut all: Vec<u64> = got_by_consumer
        .iter()
        .chain(&got_by_test)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(
        all, put,
        "consumer got {got_by_consumer:?}, the test {got_by_test:?}"
    );
    assert_eq!(q.qsize(), 0);
}

/// A plain queue's `get` and `get_many` whose reply is lost (a TCP proxy
/// drops it after the server ran the command): the items come with the
/// handle's next get, none is lost, none is got twice.
#[test]
fn a_plain_get_whose_reply_was_lost_loses_no_item() {
    let Some(base) = server() else { return };
    let _dog = watchdog("plain_lost_reply", Duration::from_secs(60));
    let proxy = LossyProxy::start(authority(&base));
    let name = fresh("lostplain");
    let _rm = Remove(vec![format!("{base}/{name}")]);
    let direct = Queue::<u64>::open_or_create(&format!("{base}/{name}"), 0).unwrap();
    // Load the scripts into the server's cache, so that an armed command
    // is what runs (not NOSCRIPT, then SCRIPT LOAD).
    direct.put_many(&[0, 0]).unwrap();
    assert_eq!(direct.get_many(2).unwrap(), [0, 0]);
    assert!(matches!(direct.get_nowait(), Err(Error::Empty)));
    let q = Queue::<u64>::open(&format!(
        "redis://127.0.0.1:{}/0/{name}?timeout_ms=2000",
        proxy.port
    ))
    .unwrap();
    for (i, many) in [(1u64, false), (10, true), (20, false), (30, true)] {
        let items = [i, i + 1, i + 2];
        direct.put_many(&items).unwrap();
        // Every command of `q` carries the queue name; the next one is the get.
        proxy.arm(&name);
        let lost_before = proxy.lost();
        let r = if many {
            q.get_many_timeout(10, Duration::from_secs(5)).map(|_| ())
        } else {
            q.get_timeout(Duration::from_secs(5)).map(|_| ())
        };
        assert!(matches!(r, Err(Error::Redis { .. })), "{r:?}");
        assert_eq!(proxy.lost(), lost_before + 1, "the proxy lost no reply");
        // The server did run it: items left the queue, only the reply was lost.
        assert!(direct.qsize() < 3, "the get took nothing");
        let mut got = Vec::new();
        loop {
            match q.get_many_timeout(10, Duration::from_millis(1500)) {
                Ok(xs) => got.extend(xs),
                Err(Error::Empty) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        got.sort_unstable();
        assert_eq!(got, items, "round {i} (get_many: {many})");
    }
}
