//! Large items are copied out of the queue without the lock: take, read,
//! pop (see `backend/shm/take.rs`). A consumer killed at each step of that
//! protocol must neither lose an item it never returned nor have it
//! delivered twice, the task count of a joinable queue must stay exact,
//! and the queue must go on working.
//!
//! `procq::__fuzzing::get_and_stop` runs a large get up to one step and
//! returns; the child then aborts (or waits for a SIGKILL) there, so every
//! window is hit exactly. The last test kills consumers at random while
//! they read large items slowly.

mod common;

use common::Reaped;
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use procq::__fuzzing::{get_and_stop, GetStop};
use procq::{Builder, Error, JoinableQueue, RawQueue};

const LIMIT: Duration = Duration::from_secs(60);
const STOPS: [GetStop; 3] = [GetStop::Taken, GetStop::Read, GetStop::Popped];

/// The large item: 200 KiB of a pattern, as the postcard encoding of a
/// `Vec<u8>` (so the typed queue reads it).
fn big() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| (i % 251) as u8).collect()
}

fn stop_named(name: &str) -> GetStop {
    *STOPS
        .iter()
        .find(|s| format!("{s:?}") == name)
        .expect("a stop")
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let q = RawQueue::open(&args[0]).unwrap();
    if role == "slow-reader" {
        // Gets large items one at a time, says on `args[2]` that it
        // started reading one, reads it slowly (a byte at a time, many
        // times over, so that most kills land mid-read) and reports it on
        // `args[1]`; ends at an item of less than 8 bytes.
        let reports = RawQueue::open(&args[1]).unwrap();
        let started = RawQueue::open(&args[2]).unwrap();
        loop {
            let got = q.get_with(Some(LIMIT), |bytes| {
                if bytes.len() >= 8 {
                    started.put(&bytes[..8]).unwrap();
                }
                let mut sum = 0u64;
                for _ in 0..200 {
                    for &b in bytes {
                        sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
                    }
                }
                std::hint::black_box(sum);
                bytes.to_vec()
            });
            let bytes = got.unwrap();
            if bytes.len() < 8 {
                q.task_done().unwrap();
                return; // the end
            }
            let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            assert!(
                bytes[8..].iter().all(|&b| b == seq as u8),
                "torn item {seq}"
            );
            reports.put(&bytes[..8]).unwrap();
            q.task_done().unwrap();
        }
    }
    let len = get_and_stop(&q, stop_named(&args[1])).unwrap();
    assert!(len == 0 || len > 16 * 1024, "a large item: {len}");
    match role.as_str() {
        // Dies there, without unwinding or detaching.
        "abort" => std::process::abort(),
        // Says so on the queue `args[2]`, then stays there (alive, holding
        // its take) until killed.
        "linger" => {
            RawQueue::open(&args[2]).unwrap().put(b"there").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn queue(tag: &str) -> JoinableQueue<Vec<u8>> {
    Builder::new()
        .name(common::unique(tag))
        .capacity_bytes(4096)
        .build_joinable::<Vec<u8>>()
        .unwrap()
}

/// Starts a child that stops a large get from `q` at `stop` and lingers
/// there; returns once it got there.
fn linger(q: &JoinableQueue<Vec<u8>>, stop: GetStop) -> Reaped {
    let there = RawQueue::new(0).unwrap();
    let child = Reaped(common::spawn(
        "linger",
        &[q.name(), &format!("{stop:?}"), there.name()],
    ));
    assert_eq!(there.get_timeout(LIMIT).unwrap(), b"there");
    child
}

/// What the queue must deliver after the child's death: the large item
/// unless the child's pop committed (then the child took it, and its task
/// is written off), then the item put after it; then nothing, with every
/// task accounted for, and the queue still working.
fn check_after(q: &JoinableQueue<Vec<u8>>, stop: GetStop) {
    if stop != GetStop::Popped {
        assert_eq!(q.get_timeout(LIMIT).unwrap(), big(), "{stop:?}");
        q.task_done().unwrap();
    }
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"after", "{stop:?}");
    q.task_done().unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Empty)), "{stop:?}");
    assert_eq!(q.qsize(), 0);
    q.join_timeout(LIMIT)
        .expect("join: the dead consumer's task is written off");
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    q.put(&big()).unwrap();
    q.put(&b"x".to_vec()).unwrap();
    assert_eq!(q.get().unwrap(), big());
    assert_eq!(q.get().unwrap(), b"x");
    q.task_done().unwrap();
    q.task_done().unwrap();
}

#[test]
fn a_consumer_that_dies_at_any_step_of_a_large_get_loses_nothing_and_duplicates_nothing() {
    for stop in STOPS {
        let q = queue("take-abort");
        q.put(&big()).unwrap();
        q.put(&b"after".to_vec()).unwrap();
        let mut child = common::spawn("abort", &[q.name(), &format!("{stop:?}")]);
        let status = common::wait(&mut child, LIMIT);
        assert!(!status.success(), "{stop:?}: the child aborts");
        check_after(&q, stop);
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}

#[test]
fn readers_wait_for_a_live_consumer_and_get_its_item_once_it_is_killed() {
    for stop in STOPS {
        let q = queue("take-linger");
        q.put(&big()).unwrap();
        q.put(&b"after".to_vec()).unwrap();
        let child = linger(&q, stop);
        if stop == GetStop::Popped {
            // Popped: the item is the child's, the next one is first.
            assert_eq!(q.qsize(), 1);
        } else {
            // Being read by a live process: it still counts, and nothing
            // behind it is handed out before it (items stay in order).
            assert_eq!(q.qsize(), 2, "{stop:?}");
            let t = Instant::now();
            let r = q.get_timeout(Duration::from_millis(100));
            assert!(matches!(r, Err(Error::Empty)), "{stop:?}: {r:?}");
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            // A get without waiting says so at once, too.
            assert!(matches!(q.get_nowait(), Err(Error::Empty)));
            assert_eq!(q.qsize(), 2);
        }
        drop(child); // SIGKILL
        check_after(&q, stop);
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}

/// A get that waits for an item being read by a killed consumer wakes up
/// by itself (nobody announces a death): within a bounded time.
#[test]
fn a_waiting_get_notices_that_the_reader_ahead_of_it_died() {
    let q = queue("take-wake");
    q.put(&big()).unwrap();
    let child = linger(&q, GetStop::Read);
    let (tx, rx) = mpsc::channel();
    let name = q.name().to_owned();
    let waiter = std::thread::spawn(move || {
        let q = JoinableQueue::<Vec<u8>>::open(&name).unwrap();
        let r = q.get_timeout(LIMIT);
        tx.send(()).unwrap();
        if r.is_ok() {
            q.task_done().unwrap();
        }
        r
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "waits"
    );
    drop(child); // SIGKILL
    rx.recv_timeout(LIMIT).expect("the waiter got the item");
    assert_eq!(waiter.join().unwrap().unwrap(), big());
    q.join_timeout(LIMIT).unwrap();
}

/// A live consumer reading in the part of the ring that growth would move
/// blocks the growth (a put that needs it waits), and growth goes on once
/// the consumer is gone; the item is delivered once, whole.
#[test]
fn growth_waits_for_a_live_take_it_would_move() {
    let q = Builder::new()
        .name(common::unique("take-grow"))
        .capacity_bytes(256 * 1024)
        .build_joinable::<Vec<u8>>()
        .unwrap();
    // Move the positions to 200 KiB: the next 200 KiB record starts at
    // 256 KiB, a position that a doubling moves.
    q.put(&vec![1u8; 200 * 1024 - 32]).unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    q.put(&big()).unwrap();
    let child = linger(&q, GetStop::Read);
    let item = vec![2u8; 100 * 1024];
    let r = q.put_timeout(&item, Duration::from_millis(200));
    assert!(matches!(r, Err(Error::Full)), "growth must wait: {r:?}");
    drop(child); // SIGKILL
    q.put_timeout(&item, LIMIT).unwrap();
    assert!(q.stats().unwrap().capacity_bytes > 256 * 1024, "it grew");
    assert_eq!(q.get_timeout(LIMIT).unwrap(), big());
    assert_eq!(q.get_timeout(LIMIT).unwrap(), item);
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    q.join_timeout(LIMIT).unwrap();
}

/// Within one process: a thread reading a large item in `get_with` holds
/// it; another thread's get waits for it (and gets the next item after);
/// a panic in the closure gives the item back, first in line; an immediate
/// shutdown lets the read in progress complete and drops the rest.
#[test]
fn a_take_in_progress_is_waited_for_given_back_on_panic_and_completes_across_a_shutdown() {
    let q = RawQueue::new(0).unwrap();
    let big = vec![7u8; 300 * 1024];
    q.put(&big).unwrap();
    q.put(b"next").unwrap();
    // A panic while reading: the item stays first.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.get_with(None, |b: &[u8]| -> usize {
            panic!("fails on {} bytes", b.len())
        })
    }));
    assert!(r.is_err());
    assert_eq!(q.qsize(), 2);
    let (reading_tx, reading_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let q = &q;
        let reader = s.spawn(move || {
            q.get_with(None, |b| {
                reading_tx.send(()).unwrap();
                go_rx.recv_timeout(LIMIT).unwrap();
                b.to_vec()
            })
        });
        reading_rx.recv_timeout(LIMIT).unwrap();
        // The other thread waits behind the item being read.
        let r = q.get_timeout(Duration::from_millis(100));
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        q.shutdown(true).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), big);
    });
    // "next" was put before the immediate shutdown: dropped.
    assert!(matches!(q.get_timeout(LIMIT), Err(Error::ShutDown)));
    assert_eq!(q.qsize(), 0);
}

/// An immediate shutdown while another process is stopped in a take: the
/// take is a get that began before it, so gets wait for it; once the
/// reader is killed, its item is dropped with the rest, not re-offered.
#[test]
fn an_immediate_shutdown_drops_the_item_of_a_dead_reader() {
    let q = queue("take-shutdown");
    q.put(&big()).unwrap();
    q.put(&b"after".to_vec()).unwrap();
    let child = linger(&q, GetStop::Read);
    q.shutdown(true).unwrap();
    assert_eq!(q.qsize(), 2, "the live take and what is behind it stay");
    let r = q.get_timeout(Duration::from_millis(100));
    assert!(matches!(r, Err(Error::Empty)), "{r:?}");
    drop(child); // SIGKILL
    let r = q.get_timeout(LIMIT);
    assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
    assert_eq!(q.qsize(), 0);
    q.join_timeout(LIMIT).expect("dropped items count as done");
}

/// Consumers reading large items slowly are SIGKILLed at random, most of
/// them mid-read: every item is delivered at most once, whole, at most one
/// per killed consumer is missing (one whose pop committed), the items of
/// consumers killed mid-read are delivered again, and join returns.
#[test]
fn sigkill_of_consumers_reading_large_items_loses_at_most_their_own_and_duplicates_nothing() {
    let _watchdog = common::watchdog(
        "sigkill_of_consumers_reading_large_items_loses_at_most_their_own_and_duplicates_nothing",
        Duration::from_secs(20 * 60),
    );
    let kills: usize = std::env::var("PROCQ_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(40, |n: usize| (n / 10).max(40));
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {rng}");
    let mut below = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let started_at = Instant::now();
    let (mut done, mut lost, mut delivered, mut reread) = (0, 0, 0, 0);
    let mut round = 0;
    while done < kills {
        round += 1;
        let q = Builder::new()
            .maxsize(if round % 2 == 0 { 4 } else { 0 })
            .capacity_bytes(4096)
            .build_raw_joinable()
            .unwrap();
        let reports = RawQueue::new(0).unwrap();
        let started = RawQueue::new(0).unwrap();
        let spawn = || {
            Reaped(common::spawn(
                "slow-reader",
                &[q.name(), reports.name(), started.name()],
            ))
        };
        let mut readers: Vec<Reaped> = (0..3).map(|_| spawn()).collect();
        let n = 60u64;
        let round_kills = (kills - done).min(10);
        let mut starts: Vec<u64> = Vec::new();
        let take_starts = |starts: &mut Vec<u64>, wait: bool| {
            let first = if wait {
                started.get_timeout(LIMIT).ok()
            } else {
                started.get_nowait().ok()
            };
            starts.extend(
                first
                    .into_iter()
                    .chain(std::iter::from_fn(|| started.get_nowait().ok()))
                    .map(|s| u64::from_le_bytes(s.try_into().unwrap())),
            );
        };
        std::thread::scope(|s| {
            let q = &q;
            let producer = s.spawn(move || {
                for seq in 0..n {
                    let mut item = vec![seq as u8; 20 * 1024 + (seq as usize * 7919) % 100_000];
                    item[..8].copy_from_slice(&seq.to_le_bytes());
                    q.put_timeout(&item, LIMIT).unwrap();
                }
            });
            for _ in 0..round_kills {
                // Some reader is reading now: kill one soon after.
                take_starts(&mut starts, true);
                std::thread::sleep(Duration::from_micros(below(3000)));
                let i = below(readers.len() as u64) as usize;
                drop(readers.swap_remove(i)); // SIGKILL
                readers.push(spawn());
                done += 1;
            }
            producer.join().unwrap();
        });
        for _ in 0..readers.len() {
            q.put_timeout(b"end", LIMIT).unwrap();
        }
        for r in &mut readers {
            common::wait_ok(&mut r.0, LIMIT);
        }
        q.join_timeout(LIMIT).expect("join after kills");
        assert_eq!(q.qsize(), 0);
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
        take_starts(&mut starts, false);
        let mut got = BTreeSet::new();
        while let Ok(s) = reports.get_nowait() {
            let s = u64::from_le_bytes(s.try_into().unwrap());
            assert!(got.insert(s), "item {s} delivered twice");
        }
        let missing = n as usize - got.len();
        assert!(
            missing <= round_kills,
            "{missing} items missing, {round_kills} consumers killed"
        );
        // Items whose reading started more than once and that arrived:
        // their first reader was killed mid-read and they came back.
        let mut seen = BTreeSet::new();
        reread += starts
            .iter()
            .filter(|&&s| !seen.insert(s) && got.contains(&s))
            .count();
        lost += missing;
        delivered += got.len();
        let name = q.name().to_owned();
        drop(readers);
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
    eprintln!(
        "{done} consumer kills in {round} rounds: {delivered} items delivered once, {reread} of them \
         read again after their reader was killed mid-read, {lost} taken by killed consumers, {:.1} s",
        started_at.elapsed().as_secs_f64()
    );
    assert!(
        reread > 0,
        "no kill landed mid-read: the test tests nothing"
    );
}

/// `get_with_or_leave`: the caller sees the oldest item and takes it or
/// leaves it first in line, small or large; a left item is not a task
/// taken; a panic leaves it too.
#[test]
fn get_with_or_leave_takes_or_leaves_the_oldest_item() {
    let q = Builder::new()
        .name(common::unique("take-leave"))
        .build_raw_joinable()
        .unwrap();
    for len in [3, 16 * 1024, 300 * 1024] {
        q.put(&vec![1u8; len]).unwrap();
        q.put(b"second").unwrap();
        let r = q.get_with_or_leave(None, |b| (b.len() != len).then_some(()));
        assert_eq!(r.unwrap(), None, "{len}: left");
        assert_eq!(q.qsize(), 2, "{len}");
        assert_eq!(q.unfinished_tasks().unwrap(), 2, "{len}");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.get_with_or_leave(None, |_| -> Option<()> { panic!("fails") })
        }));
        assert!(r.is_err());
        assert_eq!(q.qsize(), 2, "{len}: a panic leaves it");
        let got = q.get_with_or_leave(Some(Duration::ZERO), |b| Some(b.len()));
        assert_eq!(got.unwrap(), Some(len), "{len}: taken");
        assert_eq!(q.get_nowait().unwrap(), b"second", "{len}: in order");
        q.task_done_many(2).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
    }
    let r = q.get_with_or_leave(Some(Duration::ZERO), |_| Some(()));
    assert!(matches!(r, Err(Error::Empty)), "{r:?}");
    q.shutdown(false).unwrap();
    let r = q.get_with_or_leave(None, |_| Some(()));
    assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
}

/// Readers of large items overlap: while one process reads the first item,
/// another takes the second, behind it. A reader killed at each step of
/// that second take leaves its item to be delivered once (or, killed after
/// its pop committed, takes it with it, its task written off); then the
/// first reader is killed too, and its item comes back, once.
#[test]
fn a_reader_takes_the_item_behind_one_being_read_and_dies_at_any_step() {
    let second = || vec![9u8; 100 * 1024];
    for stop in STOPS {
        let q = queue("take-behind");
        q.put(&big()).unwrap();
        q.put(&second()).unwrap();
        q.put(&b"after".to_vec()).unwrap();
        let first_reader = linger(&q, GetStop::Read);
        let mut child = common::spawn("abort", &[q.name(), &format!("{stop:?}")]);
        assert!(!common::wait(&mut child, LIMIT).success(), "{stop:?}");
        if stop != GetStop::Popped {
            // Its take was not live any more: the next reader gets it,
            // while the first item is still being read.
            assert_eq!(q.get_timeout(LIMIT).unwrap(), second(), "{stop:?}");
            q.task_done().unwrap();
        }
        // Only "after" is left behind the live take: a small item waits.
        assert!(matches!(
            q.get_timeout(Duration::from_millis(100)),
            Err(Error::Empty)
        ));
        assert_eq!(q.qsize(), 2, "{stop:?}: the first item and 'after'");
        drop(first_reader); // SIGKILL
        assert_eq!(q.get_timeout(LIMIT).unwrap(), big(), "{stop:?}");
        assert_eq!(q.get_timeout(LIMIT).unwrap(), b"after", "{stop:?}");
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert!(matches!(q.get_nowait(), Err(Error::Empty)));
        q.join_timeout(LIMIT)
            .expect("join: a dead reader's task is written off");
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
        // The freed records are behind the head: the ring works on.
        for _ in 0..3 {
            q.put(&big()).unwrap();
        }
        for _ in 0..3 {
            assert_eq!(q.get_timeout(LIMIT).unwrap(), big());
            q.task_done().unwrap();
        }
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}

/// A get that takes an item *behind* one still being read lowers the
/// item count at once (the record is freed in place), so a put waiting for
/// room under `maxsize` must be woken by it, not by its own 1 s check
/// (before the fix it slept on until its 0.9 s deadline and reported
/// `Full` with the queue one item under its bound).
#[test]
fn a_get_behind_a_live_take_wakes_a_put_waiting_for_room() {
    let q = Builder::new()
        .name(common::unique("take-room"))
        .maxsize(2)
        .capacity_bytes(1 << 20)
        .build_joinable::<Vec<u8>>()
        .unwrap();
    q.put(&big()).unwrap();
    q.put(&vec![7u8; 100 * 1024]).unwrap();
    let first_reader = linger(&q, GetStop::Read);
    let name = q.name().to_owned();
    let (tx, rx) = mpsc::channel();
    let putter = std::thread::spawn(move || {
        let q = JoinableQueue::<Vec<u8>>::open(&name).unwrap();
        tx.send(()).unwrap();
        // Full (2 items, one of them being read): it waits. Its deadline
        // comes before its own periodic check (1 s), so only a wake-up
        // lets it in.
        q.put_timeout(&b"third".to_vec(), Duration::from_millis(900))
    });
    rx.recv_timeout(LIMIT).unwrap();
    // Let the put go to sleep (if it has not yet, it finds room anyway).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![7u8; 100 * 1024]);
    q.task_done().unwrap();
    let put = putter.join().unwrap();
    assert!(put.is_ok(), "the put was not woken: {put:?}");
    drop(first_reader); // SIGKILL
    assert_eq!(q.get_timeout(LIMIT).unwrap(), big());
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"third");
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join_timeout(LIMIT).unwrap();
    let name = q.name().to_owned();
    drop(q);
    assert!(!common::segment_exists(&name), "{name} leaked");
}

/// `Queue::get_if` / `JoinableQueue::get_if`: the typed form. An item the
/// predicate refuses stays first; so does one that does not decode
/// (reported); a taken one is a task.
#[test]
fn get_if_takes_or_leaves_a_typed_item() {
    let q = queue("take-get-if");
    let raw = RawQueue::open(q.name()).unwrap();
    for item in [b"small".to_vec(), big()] {
        q.put(&item).unwrap();
        assert_eq!(q.get_if(None, |v| v.len() == 1).unwrap(), None);
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.unfinished_tasks().unwrap(), 1);
        assert_eq!(q.get_if(None, |v| *v == item).unwrap(), Some(item));
        q.task_done().unwrap();
    }
    raw.put(&[0xff; 3]).unwrap(); // not a Vec<u8>'s encoding
    let r = q.get_if(Some(Duration::ZERO), |_| true);
    assert!(matches!(r, Err(Error::Codec(_))), "{r:?}");
    assert_eq!(raw.get_nowait().unwrap(), [0xff; 3], "left in place");
    raw.task_done().unwrap();
    q.join_timeout(LIMIT).unwrap();
}
