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

use std::process::Child;
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
    let bytes = postcard::to_allocvec(&big()).unwrap();
    put_and_stop(&q, &bytes, stop_named(&args[1])).unwrap();
    match role.as_str() {
        // Dies there, without unwinding or detaching.
        "abort" => std::process::abort(),
        // Stays there (alive, holding its loan) until killed.
        "linger" => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        other => panic!("unknown role {other}"),
    }
}

/// A child killed when dropped, so that a failing test leaves none behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn queue(tag: &str) -> JoinableQueue<Vec<u8>> {
    Builder::new()
        .name(common::unique(tag))
        .capacity_bytes(4096)
        .build_joinable::<Vec<u8>>()
        .unwrap()
}

/// Waits until the queue counts `n` items (the child's reservation
/// included).
fn wait_for_count(q: &JoinableQueue<Vec<u8>>, n: usize, child: &mut Child) {
    let start = Instant::now();
    while q.qsize() < n {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        assert!(start.elapsed() < LIMIT, "the child never reserved");
        std::thread::sleep(Duration::from_millis(2));
    }
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
        let mut child = Reaped(common::spawn("linger", &[q.name(), &format!("{stop:?}")]));
        wait_for_count(&q, 2, &mut child.0);
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
    let mut child = Reaped(common::spawn("linger", &[q.name(), "Copied"]));
    wait_for_count(&q, 1, &mut child.0);
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
