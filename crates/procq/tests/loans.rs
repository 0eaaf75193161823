//! Large items are copied outside the queue lock: reserve, copy, publish
//! (see "Loans" in `backend/shm/layout.rs`). A producer killed at each step
//! of that protocol must neither lose an item whose `put` returned nor
//! deliver a torn one, and the queue must go on working.
//!
//! `procq::__fuzzing::put_and_stop` runs a large put up to one step and
//! returns; the child then aborts (or waits for a SIGKILL) there, so every
//! window is hit exactly, not by chance (the random kills are in
//! `crash.rs`).

mod common;

use common::Reaped;
use std::time::{Duration, Instant};

use procq::__fuzzing::{put_and_stop, PutStop};
use procq::{Builder, Error, JoinableQueue, RawQueue};

const LIMIT: Duration = Duration::from_secs(60);
const STOPS: [PutStop; 4] = [
    PutStop::Reserved,
    PutStop::HalfCopied,
    PutStop::Copied,
    PutStop::HeaderPublished,
];

/// The large item a child puts: 200 KiB of a pattern, as the postcard
/// encoding of a `Vec<u8>` (so the typed queue can read it).
fn big() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| (i % 251) as u8).collect()
}

fn stop_named(name: &str) -> PutStop {
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
    match role.as_str() {
        // Dies inside the closure of a zero-copy put, half-way through.
        "die-in-put-with" => {
            q.put_with(300 * 1024, None, |buf| {
                buf[..1000].fill(9);
                std::process::abort()
            })
            .unwrap();
            unreachable!();
        }
        // Dies inside the closure of a zero-copy get.
        "die-in-get-with" => {
            q.get_with(None, |_| std::process::abort()).unwrap();
            unreachable!();
        }
        _ => {}
    }
    let bytes = postcard::to_allocvec(&big()).unwrap();
    put_and_stop(&q, &bytes, stop_named(&args[1])).unwrap();
    match role.as_str() {
        // Dies there, without unwinding or detaching.
        "abort" => std::process::abort(),
        // Says so on the queue `args[2]`, then stays there (alive, holding
        // its loan) until killed.
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

/// Starts a child that stops a large put to `q` at `stop` and lingers
/// there; returns once it got there.
fn linger(q: &JoinableQueue<Vec<u8>>, stop: &str) -> Reaped {
    let there = RawQueue::new(0).unwrap();
    let child = Reaped(common::spawn("linger", &[q.name(), stop, there.name()]));
    assert_eq!(there.get_timeout(LIMIT).unwrap(), b"there");
    child
}

/// What the queue must deliver after the child's death, in order: the item
/// put before, the child's item if its header was published, the item put
/// after; and then nothing, with every task accounted for.
fn check_after(q: &JoinableQueue<Vec<u8>>, stop: PutStop) {
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"before");
    q.task_done().unwrap();
    if stop == PutStop::HeaderPublished {
        // Copied in full before the header changed: the item is whole.
        assert_eq!(q.get_timeout(LIMIT).unwrap(), big());
        q.task_done().unwrap();
    }
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"after", "{stop:?}");
    q.task_done().unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    assert_eq!(q.qsize(), 0);
    q.join_timeout(LIMIT)
        .expect("join: the orphan's task is written off");
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    // The queue still takes large and small items.
    q.put(&big()).unwrap();
    q.put(&b"x".to_vec()).unwrap();
    assert_eq!(q.get().unwrap(), big());
    assert_eq!(q.get().unwrap(), b"x");
    q.task_done().unwrap();
    q.task_done().unwrap();
}

#[test]
fn a_producer_that_dies_at_any_step_of_a_large_put_loses_and_tears_nothing() {
    for stop in STOPS {
        let q = queue("loan-abort");
        q.put(&b"before".to_vec()).unwrap();
        let mut child = common::spawn("abort", &[q.name(), &format!("{stop:?}")]);
        let status = common::wait(&mut child, LIMIT);
        assert!(!status.success(), "{stop:?}: the child aborts");
        q.put(&b"after".to_vec()).unwrap();
        check_after(&q, stop);
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}

#[test]
fn readers_wait_for_a_live_producer_and_skip_it_once_killed() {
    for stop in STOPS {
        let q = queue("loan-linger");
        q.put(&b"before".to_vec()).unwrap();
        let child = linger(&q, &format!("{stop:?}"));
        assert_eq!(q.qsize(), 2, "the reservation counts");
        q.put(&b"after".to_vec()).unwrap();
        assert_eq!(q.get_timeout(LIMIT).unwrap(), b"before");
        q.task_done().unwrap();
        if stop != PutStop::HeaderPublished {
            // The front record is still being written by a live process:
            // nothing behind it may be taken, and nothing torn is delivered.
            let t = Instant::now();
            let r = q.get_timeout(Duration::from_millis(100));
            assert!(matches!(r, Err(Error::Empty)), "{stop:?}: {r:?}");
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            assert_eq!(q.qsize(), 2, "the reservation still counts");
        }
        drop(child); // SIGKILL
        let rest: Vec<Vec<u8>> = std::iter::from_fn(|| q.get_timeout(LIMIT).ok())
            .inspect(|_| q.task_done().unwrap())
            .take_while(|it| it.as_slice() != b"after")
            .collect();
        if stop == PutStop::HeaderPublished {
            assert_eq!(rest, vec![big()]);
        } else {
            assert!(rest.is_empty(), "{stop:?}: {} items", rest.len());
        }
        assert!(matches!(q.get_nowait(), Err(Error::Empty)));
        q.join_timeout(LIMIT).expect("join");
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}

/// A live producer copying into the part of the ring that growth would
/// move blocks the growth (a put that needs it waits), and the growth goes
/// on once the producer is gone.
#[test]
fn growth_waits_for_a_live_reservation_it_would_move() {
    let q = Builder::new()
        .name(common::unique("loan-grow"))
        .capacity_bytes(256 * 1024)
        .build_joinable::<Vec<u8>>()
        .unwrap();
    // Move the positions to 200 KiB: the child's 200 KiB record does not
    // fit after that in the 256 KiB ring, so it starts at 256 KiB, a
    // position that a doubling moves.
    q.put(&vec![1u8; 200 * 1024 - 32]).unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    let child = linger(&q, "Copied");
    let item = vec![2u8; 100 * 1024];
    let r = q.put_timeout(&item, Duration::from_millis(200));
    assert!(matches!(r, Err(Error::Full)), "growth must wait: {r:?}");
    drop(child); // SIGKILL
    q.put_timeout(&item, LIMIT).unwrap();
    assert!(q.stats().unwrap().capacity_bytes > 256 * 1024, "it grew");
    assert_eq!(q.get_timeout(LIMIT).unwrap(), item);
    q.task_done().unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    q.join_timeout(LIMIT).unwrap();
}

#[test]
fn put_with_writes_in_place_and_a_panic_in_it_puts_nothing() {
    let q = Builder::new()
        .name(common::unique("put-with"))
        .build_raw()
        .unwrap();
    for len in [0, 10, 16 * 1024 - 1, 16 * 1024, 1 << 20] {
        q.put_with(len, None, |buf| {
            assert_eq!(buf.len(), len);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i % 253) as u8;
            }
        })
        .unwrap();
        let want: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        assert_eq!(q.get_nowait().unwrap(), want, "{len}");
    }
    for len in [100, 200 * 1024] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.put_with(len, None, |buf| {
                buf.fill(1);
                panic!("the closure fails");
            })
        }));
        assert!(r.is_err());
        // Nothing was put, nothing waits for the withdrawn reservation.
        assert!(matches!(q.get_nowait(), Err(Error::Empty)), "{len}");
        assert_eq!(q.qsize(), 0);
        q.put_with(len, None, |buf| buf.fill(2)).unwrap();
        assert_eq!(q.get_nowait().unwrap(), vec![2; len]);
    }
    // Too large: refused before the closure runs.
    let r = q.put_with(usize::MAX / 2, Some(Duration::ZERO), |_| unreachable!());
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
}

#[test]
fn a_panic_in_get_with_leaves_the_item_first_in_line() {
    let q = RawQueue::new(0).unwrap();
    q.put(b"one").unwrap();
    q.put(b"two").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.get_with(None, |_| panic!("the closure fails"))
    }));
    assert!(r.is_err());
    assert_eq!(q.get().unwrap(), b"one");
    assert_eq!(q.get().unwrap(), b"two");
}

#[test]
fn a_process_that_dies_in_put_with_or_get_with_loses_nothing() {
    let q = queue("loan-die-with");
    let raw = RawQueue::open(q.name()).unwrap();
    q.put(&b"before".to_vec()).unwrap();
    let mut child = common::spawn("die-in-put-with", &[q.name()]);
    assert!(!common::wait(&mut child, LIMIT).success());
    q.put(&b"after".to_vec()).unwrap();
    // The half-written item is never delivered.
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"before");
    assert_eq!(q.get_timeout(LIMIT).unwrap(), b"after");
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert_eq!(q.qsize(), 0);
    // A consumer that dies inside get_with leaves the item in the queue.
    raw.put_with(100 * 1024, None, |b| b.fill(3)).unwrap();
    let mut child = common::spawn("die-in-get-with", &[q.name()]);
    assert!(!common::wait(&mut child, LIMIT).success());
    assert_eq!(raw.get_timeout(LIMIT).unwrap(), vec![3; 100 * 1024]);
    raw.task_done().unwrap();
    q.join_timeout(LIMIT).unwrap();
}

/// A shutdown while a live producer is still copying a large item: the
/// reservation counts as an item (its put began first), so gets wait for it
/// rather than report the end of the stream; an immediate shutdown drops
/// what is before it and never pulls the record from under the copy; and a
/// put that would reserve after the shutdown is refused.
#[test]
fn shutdown_waits_for_a_put_still_copying_and_never_pulls_its_record() {
    for immediate in [false, true] {
        let q = queue("loan-shutdown");
        q.put(&b"before".to_vec()).unwrap();
        let child = linger(&q, "HalfCopied");
        q.put(&b"after".to_vec()).unwrap();
        q.shutdown(immediate).unwrap();
        assert!(matches!(q.put(&big()), Err(Error::ShutDown)), "large put");
        assert!(matches!(q.put(&b"x".to_vec()), Err(Error::ShutDown)));
        if immediate {
            assert_eq!(q.qsize(), 2, "'before' dropped; the reservation stays");
            assert_eq!(q.unfinished_tasks().unwrap(), 2);
        } else {
            assert_eq!(q.get_timeout(LIMIT).unwrap(), b"before");
            q.task_done().unwrap();
        }
        let r = q.get_timeout(Duration::from_millis(100));
        assert!(
            matches!(r, Err(Error::Empty)),
            "immediate={immediate}: a live reservation is not the end: {r:?}"
        );
        drop(child); // SIGKILL: the reservation is an orphan now
        if !immediate {
            assert_eq!(q.get_timeout(LIMIT).unwrap(), b"after");
            q.task_done().unwrap();
        }
        let r = q.get_timeout(LIMIT);
        assert!(
            matches!(r, Err(Error::ShutDown)),
            "immediate={immediate}: {r:?}"
        );
        assert_eq!(q.qsize(), 0);
        q.join_timeout(LIMIT).expect("join");
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "{name} leaked");
    }
}
