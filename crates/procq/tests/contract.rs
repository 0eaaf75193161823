//! The contract every backend keeps: the same tests, run against every
//! backend present — shared memory always; Redis when procq is built with
//! the `redis` feature and `PROCQ_REDIS_URL` names a server (as
//! `scripts/test.d/50-redis.sh` does; without it they say that they skip
//! Redis). A queue is made from a location — a shared-memory name or a
//! Redis URL — and from then on the test cannot tell which backend it uses,
//! as a program cannot: the point of the backend seam. (The layout follows
//! ipc-channel's `platform/test.rs`: one suite, every platform.)
//!
//! Backend-specific behaviour is tested elsewhere: crash recovery, locking
//! and memory in the shared-memory suites, leases, faults, URLs and TLS in
//! `tests/redis.rs`.

mod common;
mod contract_support;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{role, spawn, wait_ok};
use contract_support::*;
use procq::{Error, JoinableQueue, Queue, RawQueue};

#[test]
fn child_entry() {
    let Some((role, args)) = role() else { return };
    contract_support::run_role(&role, &args);
}

#[test]
fn fifo_sizes_nowait_and_timeouts() {
    each_backend(|on| {
        let (q, _q_rm) = make::<u64>(on, "fifo", 3);
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
    each_backend(|on| {
        let (q, _q_rm) = make::<u64>(on, "batch", 0);
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
        let (b, _b_rm) = make::<u64>(on, "batch-bounded", 4);
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
    each_backend(|on| {
        let (q, _q_rm) = make::<u64>(on, "wake", 1);
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
    each_backend(|on| {
        let (q, _q_rm) = make::<u64>(on, "close", 0);
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
    each_backend(|on| {
        let (q, _rm) = make::<u64>(on, "close-same", 0);
        let q = std::sync::Arc::new(q);
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

#[test]
fn many_processes_every_item_exactly_once_and_maxsize_never_exceeded() {
    each_backend(|on| {
        let (q, _q_rm) = make::<u64>(on, "mpmc", 5);
        let (results, _results_rm) = make::<u64>(on, "mpmc-out", 0);
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
    each_backend(|on| {
        let (q, _q_rm) = make_joinable(on, "join");
        let (results, _results_rm) = make::<u64>(on, "join-out", 0);
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
fn task_done_many_finishes_a_batch_at_once_or_none_of_it() {
    each_backend(|on| {
        let (q, _rm) = make_joinable(on, "tdm");
        q.put_many(&(0..10).collect::<Vec<_>>()).unwrap();
        assert_eq!(q.get_many(6).unwrap(), (0..6).collect::<Vec<_>>());
        // More than were got: refused, and none is marked.
        assert!(matches!(q.task_done_many(7), Err(Error::TaskDoneTooOften)));
        assert_eq!(q.unfinished_tasks().unwrap(), 10);
        q.task_done_many(0).unwrap();
        q.task_done_many(6).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 4);
        assert!(matches!(
            q.join_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        assert_eq!(q.get_many(10).unwrap(), (6..10).collect::<Vec<_>>());
        q.task_done_many(4).unwrap();
        q.join_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(q.task_done_many(1), Err(Error::TaskDoneTooOften)));
    });
}

#[test]
fn open_never_creates_and_open_or_create_does() {
    each_backend(|on| {
        let loc = fresh(on, "open-rule");
        let _rm = Remove(loc.clone());
        assert!(matches!(Queue::<u64>::open(&loc), Err(Error::NotFound(_))));
        assert!(matches!(
            JoinableQueue::<u64>::open(&loc),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(RawQueue::open(&loc), Err(Error::NotFound(_))));
        // Looking did not create it either.
        assert!(matches!(procq::stats(&loc), Err(Error::NotFound(_))));
        let q = Queue::<u64>::open_or_create(&loc, 3).unwrap();
        assert_eq!(Queue::<u64>::open(&loc).unwrap().maxsize(), 3);
        assert_eq!(RawQueue::open_or_create(&loc, 3).unwrap().maxsize(), 3);
        q.put(&1).unwrap();
        assert_eq!(RawQueue::open(&loc).unwrap().qsize(), 1);
        // The same rule for joinable queues, which must be joinable.
        let jloc = fresh(on, "open-rule-j");
        let _jrm = Remove(jloc.clone());
        assert!(matches!(
            JoinableQueue::<u64>::open(&jloc),
            Err(Error::NotFound(_))
        ));
        let j = JoinableQueue::<u64>::open_or_create(&jloc, 0).unwrap();
        assert!(JoinableQueue::<u64>::open(&jloc).is_ok());
        assert!(matches!(
            JoinableQueue::<u64>::open(&loc),
            Err(Error::InvalidQueue { .. })
        ));
        drop(j);
    });
}

#[test]
fn a_join_that_runs_out_of_time_is_a_timeout() {
    each_backend(|on| {
        let (q, _rm) = make_joinable(on, "join-timeout");
        q.put(&1).unwrap();
        let t = Instant::now();
        assert!(matches!(
            q.join_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert!(matches!(
            q.join_deadline(Instant::now()),
            Err(Error::Timeout)
        ));
        let raw = RawQueue::open(q.name()).unwrap();
        assert!(matches!(
            raw.join_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert_eq!(q.get().unwrap(), 1);
        q.task_done().unwrap();
        q.join_timeout(Duration::from_secs(5)).unwrap();
        raw.join_deadline(Instant::now() + Duration::from_secs(5))
            .unwrap();
    });
}

/// An encoding no `u64` has: a varint that never ends.
const NOT_A_U64: &[u8] = &[0xff; 11];

#[test]
fn an_undecodable_item_is_reported_once_and_never_blocks_the_queue() {
    each_backend(|on| {
        let (q, _rm) = make::<u64>(on, "undecodable", 0);
        let raw = RawQueue::open(q.name()).unwrap();
        raw.put(NOT_A_U64).unwrap();
        q.put(&7).unwrap();
        assert!(matches!(q.get_nowait(), Err(Error::Codec(_))));
        assert_eq!(q.get_nowait().unwrap(), 7);
        // In a batch: the items before it come back, it ends the batch, the
        // next call reports it, the one after gets the rest.
        q.put(&1).unwrap();
        raw.put(NOT_A_U64).unwrap();
        q.put(&2).unwrap();
        assert_eq!(q.get_many_nowait(10).unwrap(), [1]);
        assert!(matches!(q.get_many_nowait(10), Err(Error::Codec(_))));
        assert_eq!(q.get_many_nowait(10).unwrap(), [2]);
        assert!(q.empty());
    });
}

#[test]
fn an_undecodable_task_counts_as_done() {
    each_backend(|on| {
        let (q, _rm) = make_joinable(on, "undecodable-task");
        RawQueue::open(q.name()).unwrap().put(NOT_A_U64).unwrap();
        q.put(&5).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 2);
        assert!(matches!(
            q.get_timeout(Duration::from_secs(5)),
            Err(Error::Codec(_))
        ));
        assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 5);
        q.task_done().unwrap();
        // The caller never got the bad item, so it never finishes it.
        q.join_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
    });
}

#[test]
fn raw_queues_have_every_form_of_waiting() {
    each_backend(|on| {
        let loc = fresh(on, "raw-forms");
        let _rm = Remove(loc.clone());
        let q = RawQueue::open_or_create(&loc, 2).unwrap();
        q.put(b"a").unwrap();
        q.put_deadline(b"b", Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert!(matches!(q.put_nowait(b"c"), Err(Error::Full)));
        assert!(matches!(
            q.put_timeout(b"c", Duration::from_millis(20)),
            Err(Error::Full)
        ));
        assert!(matches!(
            q.put_deadline(b"c", Instant::now() + Duration::from_millis(20)),
            Err(Error::Full)
        ));
        assert_eq!(q.get_many(1).unwrap(), [b"a".to_vec()]);
        assert_eq!(
            q.get_many_deadline(5, Instant::now() + Duration::from_secs(5))
                .unwrap(),
            [b"b".to_vec()]
        );
        assert!(matches!(q.get_many_nowait(5), Err(Error::Empty)));
        assert!(matches!(
            q.get_many_timeout(5, Duration::from_millis(20)),
            Err(Error::Empty)
        ));
        assert!(matches!(
            q.get_deadline(Instant::now() + Duration::from_millis(20)),
            Err(Error::Empty)
        ));
        q.put_many([b"x".as_slice(), b"y"]).unwrap();
        assert_eq!(q.get().unwrap(), b"x");
        assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), b"y");
    });
}

#[test]
fn display_and_debug_never_show_a_password() {
    each_backend(|on| {
        let (q, _rm) = make::<u64>(on, "shown", 0);
        let shown = q.address().to_string();
        assert_eq!(shown, q.display_name());
        assert!(format!("{q:?}").contains(&*q.display_name()));
        if let On::Redis(base) = on {
            // The same server with a password a Redis user may carry: the
            // name keeps it (another process needs it), nothing shown does.
            let url = base.replacen("://", "://user:hunter2@", 1) + "/x";
            let address: procq::Address = url.parse().unwrap();
            assert_eq!(address.as_str(), url);
            assert!(!address.to_string().contains("hunter2"));
            assert!(!format!("{address:?}").contains("hunter2"));
        }
    });
}

#[test]
fn shutdown_refuses_puts_hands_out_what_remains_then_ends() {
    each_backend(|on| {
        for maxsize in [0, 3] {
            let (q, _rm) = make::<u64>(on, "shut", maxsize);
            q.put_many(&[1, 2, 3]).unwrap();
            assert!(!q.is_shutdown());
            q.shutdown(false).unwrap();
            assert!(q.is_shutdown() && q.stats().unwrap().shutdown);
            assert!(matches!(q.put(&4), Err(Error::ShutDown)));
            assert!(matches!(q.put_nowait(&4), Err(Error::ShutDown)));
            assert!(matches!(q.put_many(&[4, 5]), Err(Error::ShutDown)));
            assert!(matches!(
                q.put_timeout(&4, Duration::from_secs(5)),
                Err(Error::ShutDown)
            ));
            // Another handle, opened after: the same state.
            let late = Queue::<u64>::open(q.name()).unwrap();
            assert!(late.is_shutdown());
            assert_eq!(late.get().unwrap(), 1);
            assert_eq!(q.get_many(5).unwrap(), [2, 3]);
            let t = Instant::now();
            assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
            assert!(matches!(
                q.get_timeout(Duration::from_secs(5)),
                Err(Error::ShutDown)
            ));
            assert!(matches!(q.get(), Err(Error::ShutDown)));
            assert!(matches!(late.get(), Err(Error::ShutDown)));
            assert!(matches!(q.get_many(5), Err(Error::ShutDown)));
            assert!(matches!(q.get_many_nowait(5), Err(Error::ShutDown)));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            q.shutdown(false).unwrap(); // again: harmless
            assert_eq!(q.iter().count(), 0);
            assert_eq!(q.try_iter().count(), 0);
            assert_eq!(q.qsize(), 0);
        }
        let (j, _rm) = make_joinable(on, "shut-j");
        j.put_many(&[1, 2]).unwrap();
        j.shutdown(false).unwrap();
        assert!(matches!(j.put(&3), Err(Error::ShutDown)));
        assert_eq!(j.get().unwrap(), 1);
        j.task_done().unwrap();
        assert_eq!(j.get_many(5).unwrap(), [2]);
        assert!(matches!(j.get(), Err(Error::ShutDown)));
        assert_eq!(j.unfinished_tasks().unwrap(), 1);
        j.task_done().unwrap();
        j.join_timeout(Duration::from_secs(5)).unwrap();
    });
}

#[test]
fn shutdown_wakes_blocked_getters_and_putters_of_other_processes_at_once() {
    each_backend(|on| {
        let (plain, _rm1) = make::<u64>(on, "wake-plain", 0);
        let (bounded, _rm2) = make::<u64>(on, "wake-bounded", 1);
        let (full, _rm3) = make::<u64>(on, "wake-full", 1);
        let (joinable, _rm4) = make_joinable(on, "wake-j");
        let (ready, _rm5) = make::<u64>(on, "wake-ready", 0);
        full.put(&0).unwrap();
        let get = |q: &str, j: &str| spawn("get_until_shutdown", &[q, ready.name(), j]);
        let mut children = Children(vec![
            get(plain.name(), "-"),
            get(plain.name(), "-"),
            get(bounded.name(), "-"),
            get(joinable.name(), "j"),
            spawn("put_until_shutdown", &[full.name(), ready.name()]),
            spawn("put_until_shutdown", &[full.name(), ready.name()]),
        ]);
        for _ in 0..children.0.len() {
            ready.get_timeout(Duration::from_secs(30)).unwrap();
        }
        // Let them block. On Redis, a waiter not woken would still give up
        // its BLPOP after the 2 s backstop: 300 ms in, it would return
        // 1.7 s after the shutdown, past the bound below.
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        plain.shutdown(false).unwrap();
        bounded.shutdown(false).unwrap();
        joinable.shutdown(true).unwrap();
        full.shutdown(false).unwrap();
        for c in &mut children.0 {
            wait_ok(c, Duration::from_secs(30));
        }
        let e = t.elapsed();
        assert!(
            e < Duration::from_millis(1300),
            "woke {e:?} after the shutdown"
        );
        // The putters' items were refused; the one put before remains.
        assert_eq!(full.get_nowait().unwrap(), 0);
        assert!(matches!(full.get_nowait(), Err(Error::ShutDown)));
    });
}

#[test]
fn a_put_racing_a_shutdown_is_delivered_or_refused_never_lost() {
    each_backend(|on| {
        for round in 0..8u64 {
            let maxsize = if round % 2 == 0 { 0 } else { 4 };
            let (q, _rm) = make::<u64>(on, "race", maxsize);
            let (accepted, _rm2) = make::<u64>(on, "race-acc", 0);
            let mut children = Children(
                (0..2u64)
                    .map(|id| {
                        spawn(
                            "produce_until_shutdown",
                            &[q.name(), accepted.name(), &id.to_string()],
                        )
                    })
                    .collect(),
            );
            let stop_after = 20 + round * 37;
            let mut seen = std::collections::HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match q.get_timeout(Duration::from_secs(30)) {
                    Ok(v) => assert!(seen.insert(v), "{v:#x} twice"),
                    Err(Error::ShutDown) => break,
                    Err(e) => panic!("get: {e}"),
                }
                if seen.len() as u64 == stop_after {
                    q.shutdown(false).unwrap();
                }
                assert!(Instant::now() < deadline, "round {round} never ended");
            }
            for c in &mut children.0 {
                wait_ok(c, Duration::from_secs(30));
            }
            let mut total = 0;
            for _ in 0..2 {
                let r = accepted.get_nowait().unwrap();
                let (id, n) = (r >> 32, r & 0xffff_ffff);
                for i in 0..n {
                    assert!(
                        seen.contains(&(id << 32 | i)),
                        "round {round}: {id}/{i} lost"
                    );
                }
                total += n;
            }
            assert_eq!(
                seen.len() as u64,
                total,
                "round {round}: only accepted puts"
            );
            assert!(total >= stop_after);
        }
    });
}

#[test]
fn immediate_shutdown_drops_what_is_left_and_join_returns_once_in_flight_tasks_are_done() {
    each_backend(|on| {
        let (q, _rm) = make_joinable(on, "imm");
        let (up, _rm2) = make::<u64>(on, "imm-up", 0);
        let (down, _rm3) = make::<u64>(on, "imm-down", 0);
        q.put_many(&[1, 2, 3, 4, 5]).unwrap();
        let mut children = Children(vec![spawn("take_one", &[q.name(), up.name(), down.name()])]);
        up.get_timeout(Duration::from_secs(30)).unwrap();
        children.0.push(spawn("join", &[q.name()]));
        q.shutdown(true).unwrap();
        // The four left are gone and done; the one in flight is neither.
        assert_eq!(q.qsize(), 0);
        assert_eq!(q.unfinished_tasks().unwrap(), 1);
        assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
        assert!(matches!(q.put(&6), Err(Error::ShutDown)));
        assert!(matches!(
            q.join_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            children.0[1].try_wait().unwrap().is_none(),
            "join returned before the task in flight was done"
        );
        down.put(&1).unwrap();
        for c in &mut children.0 {
            wait_ok(c, Duration::from_secs(30));
        }
        q.join_timeout(Duration::from_secs(5)).unwrap();

        // A plain queue; an immediate shutdown after a plain one still
        // drops what is left.
        let (p, _rm4) = make::<u64>(on, "imm-plain", 0);
        p.put_many(&[1, 2, 3]).unwrap();
        p.shutdown(false).unwrap();
        assert_eq!(p.get().unwrap(), 1);
        p.shutdown(true).unwrap();
        assert_eq!(p.qsize(), 0);
        assert!(matches!(p.get_nowait(), Err(Error::ShutDown)));
        assert!(matches!(p.get(), Err(Error::ShutDown)));
    });
}
